//go:build e2e

// Command harness runs the OCI distribution-spec conformance suite (the
// 2026 rewrite, module github.com/opencontainers/distribution-spec/conformance)
// against an in-process distribution registry twice: directly, and through
// registry-relay. It prints pass/fail/skip counts per workflow for both legs
// and every test that passes directly but not through the relay, and exits
// 1 when there is one.
//
// The relay is read-only, so on the relay leg a small front splits the
// suite's traffic: GET and HEAD go to the relay, writes (and the blob upload
// session, GET included) go straight to the upstream. The client's Host
// header is kept on both legs: the relay picks its route by it and points
// rewritten realms at it, and the upstream's absolute Location headers
// come back to the front. Push and delete tests therefore test the upstream,
// but their "verify the returned Location" GETs still go through the relay.
//
// Usage (see docs/conformance-notes.md):
//
//	GOBIN=$PWD/bin go install github.com/opencontainers/distribution-spec/conformance@v0.0.0-20260831232431-97274622c111
//	go run -tags e2e ./internal/e2e/conformance/harness -suite bin/conformance
//
// With -front-only it serves only the split front, for runs against
// separately started registry and relay binaries.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

func main() {
	var (
		suite     = flag.String("suite", "", "conformance suite binary (required unless -front-only)")
		outDir    = flag.String("out", "", "directory for per-run outputs (default: a new temp dir)")
		auths     = flag.String("auth", "none,token", "upstream auth modes to run: none, token")
		profiles  = flag.String("profiles", "full,pull,readonly", "suite profiles to run: full, pull, readonly")
		route     = flag.String("route", "k8s", "relay route to test: k8s (names unchanged) or dockerhub (library/ patch)")
		cacheAuth = flag.Bool("cache-auth", true, "OCI_CACHE_AUTH: reuse tokens between requests (false sends every request through the 401 + token flow)")
		anonymous = flag.Bool("anonymous", false, "token auth, readonly profile: pull without credentials (anonymous tokens)")
		frontOnly = flag.Bool("front-only", false, "only serve the split front (-listen, -relay, -upstream)")
		listen    = flag.String("listen", "127.0.0.1:25081", "front-only: listen address")
		relayURL  = flag.String("relay", "http://127.0.0.1:25080", "front-only: relay base URL")
		upURL     = flag.String("upstream", "http://127.0.0.1:25000", "front-only: upstream base URL")
		library   = flag.Bool("library", false, "front-only: insert library/ into single-segment names on the write leg (dockerhub route)")
	)
	flag.Parse()
	if *frontOnly {
		r, err1 := url.Parse(*relayURL)
		u, err2 := url.Parse(*upURL)
		if err := errors.Join(err1, err2); err != nil {
			log.Fatal(err)
		}
		log.Printf("front on %s: reads -> %s, writes -> %s", *listen, r, u)
		log.Fatal(http.ListenAndServe(*listen, newFront(r, u, *library, log.New(os.Stderr, "", log.LstdFlags))))
	}
	if *suite == "" {
		flag.Usage()
		os.Exit(2)
	}
	bin, err := filepath.Abs(*suite)
	if err != nil {
		log.Fatal(err)
	}
	if *route != "k8s" && *route != "dockerhub" {
		log.Fatalf("-route %q: want k8s or dockerhub", *route)
	}
	if *outDir == "" {
		if *outDir, err = os.MkdirTemp("", "relay-conformance-"); err != nil {
			log.Fatal(err)
		}
	}
	regressions := 0
	var rows []row
	for _, auth := range split(*auths) {
		for _, profile := range split(*profiles) {
			spec := runSpec{suite: bin, auth: auth, profile: profile, route: *route, cacheAuth: *cacheAuth, anonymous: *anonymous}
			var legs [2]*report
			for i, leg := range []string{"direct", "relay"} {
				spec.leg = leg
				spec.dir = filepath.Join(*outDir, auth+"-"+profile+"-"+leg)
				rep, err := runLeg(spec)
				if err != nil {
					log.Fatalf("%s/%s/%s: %v", auth, profile, leg, err)
				}
				legs[i] = rep
			}
			rows = append(rows, row{auth, profile, legs[0], legs[1]})
			regressions += printRegressions(os.Stdout, auth, profile, legs[0], legs[1])
		}
	}
	printTable(os.Stdout, rows)
	fmt.Printf("outputs: %s\n", *outDir)
	if regressions > 0 {
		fmt.Printf("%d test(s) pass directly but not through the relay\n", regressions)
		os.Exit(1)
	}
	fmt.Println("no test passes directly and fails through the relay")
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

type runSpec struct {
	suite, dir                string
	auth, profile, route, leg string
	cacheAuth, anonymous      bool
}

// Repositories the suite uses. The dockerhub route gets single-segment
// names so that the relay's library/ insertion is exercised.
func (s runSpec) repos() (string, string) {
	if s.route == "dockerhub" {
		return "conformance-repo1", "conformance-repo2"
	}
	return "conformance/repo1", "conformance/repo2"
}

// upstreamRepo is the name under which the upstream stores what the suite
// calls repo on this leg.
func (s runSpec) upstreamRepo(repo string) string {
	if s.leg == "relay" && s.route == "dockerhub" && !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}

// runLeg starts a fresh upstream (and relay and front on the relay leg),
// runs the suite once and parses its report.
func runLeg(s runSpec) (*report, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	var issuer *relaytest.TokenIssuer
	if s.auth == "token" {
		var err error
		if issuer, err = relaytest.StartTokenIssuer(relaytest.IssuerOptions{}, ""); err != nil {
			return nil, err
		}
		defer issuer.Close()
	} else if s.auth != "none" {
		return nil, fmt.Errorf("unknown auth mode %q", s.auth)
	}
	reg, err := relaytest.StartRegistry(relaytest.RegistryOptions{Auth: issuer})
	if err != nil {
		return nil, err
	}
	defer reg.Close()

	repo1, repo2 := s.repos()
	env := map[string]string{
		"OCI_TLS":         "disabled",
		"OCI_REPO1":       repo1,
		"OCI_REPO2":       repo2,
		"OCI_RESULTS_DIR": filepath.Join(s.dir, "results"),
		"OCI_LOG":         "warn",
		"OCI_CACHE_AUTH":  fmt.Sprint(s.cacheAuth),
	}
	if issuer != nil && !(s.anonymous && s.profile == "readonly") {
		env["OCI_USERNAME"], env["OCI_PASSWORD"] = relaytest.AdminUser, relaytest.AdminPassword
	}
	switch s.profile {
	case "full":
	case "pull":
		// Push stays on as the suite's setup; nothing is deleted.
		env["OCI_API_BLOBS_DELETE"] = "false"
		env["OCI_API_MANIFESTS_DELETE"] = "false"
		env["OCI_API_TAGS_DELETE"] = "false"
	case "readonly":
		env["OCI_API_PUSH"] = "false"
		env["OCI_API_BLOBS_DELETE"] = "false"
		env["OCI_API_MANIFESTS_DELETE"] = "false"
		env["OCI_API_TAGS_DELETE"] = "false"
		seed, err := seedReadOnly(reg, s.upstreamRepo(repo1))
		if err != nil {
			return nil, fmt.Errorf("seeding: %w", err)
		}
		env["OCI_RO_DATA_TAGS"] = strings.Join(seed.tags, " ")
		env["OCI_RO_DATA_MANIFESTS"] = strings.Join(seed.manifests, " ")
		env["OCI_RO_DATA_BLOBS"] = strings.Join(seed.blobs, " ")
		env["OCI_RO_DATA_REFERRERS"] = strings.Join(seed.referrers, " ")
	default:
		return nil, fmt.Errorf("unknown profile %q", s.profile)
	}

	target := reg.Host
	if s.leg == "relay" {
		authHost := ""
		if issuer != nil {
			authHost = issuer.Host
		}
		relayURL, stop, err := startRelay(s, reg.URL, authHost)
		if err != nil {
			return nil, err
		}
		defer stop()
		frontLog, err := os.Create(filepath.Join(s.dir, "front.log"))
		if err != nil {
			return nil, err
		}
		defer frontLog.Close()
		up, _ := url.Parse(reg.URL)
		front := newFront(relayURL, up, s.route == "dockerhub", log.New(frontLog, "", 0))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		srv := &http.Server{Handler: front, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		target = ln.Addr().String()
	}
	env["OCI_REGISTRY"] = target
	return runSuite(s, env)
}

// startRelay serves registry-relay in-process with the route under test
// answering 127.0.0.1 (any port) and relaying to upstream.
func startRelay(s runSpec, upstream, authHost string) (*url.URL, func(), error) {
	prefix := map[string]string{"k8s": "K8S", "dockerhub": "DOCKERHUB"}[s.route]
	cfg, err := config.Load(map[string]string{
		"RELAY_LISTEN":            "127.0.0.1:0",
		"RELAY_ADMIN_LISTEN":      "127.0.0.1:0",
		"RELAY_LOG_FORMAT":        "text",
		"RELAY_LOG_LEVEL":         "info",
		"RELAY_SHUTDOWN_GRACE":    "1s",
		prefix + "_ACCESS_DOMAIN": "127.0.0.1",
		prefix + "_UPSTREAM":      upstream,
		prefix + "_AUTH_HOSTS":    authHost,
	})
	if err != nil {
		return nil, nil, err
	}
	logFile, err := os.Create(filepath.Join(s.dir, "relay.log"))
	if err != nil {
		return nil, nil, err
	}
	a, err := app.New(cfg, logFile)
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	mainLn, adminLn, err := app.Listen(cfg)
	if err != nil {
		logFile.Close()
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.ServeListeners(ctx, mainLn, adminLn)
	}()
	u := &url.URL{Scheme: "http", Host: mainLn.Addr().String()}
	return u, func() { cancel(); <-done; logFile.Close() }, nil
}
