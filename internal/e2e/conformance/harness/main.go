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
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

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
		relayURL, stop, err := startRelay(s, reg.URL)
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
func startRelay(s runSpec, upstream string) (*url.URL, func(), error) {
	prefix := map[string]string{"k8s": "K8S", "dockerhub": "DOCKERHUB"}[s.route]
	cfg, err := config.Load(map[string]string{
		"RELAY_LISTEN":            "127.0.0.1:0",
		"RELAY_ADMIN_LISTEN":      "127.0.0.1:0",
		"RELAY_LOG_FORMAT":        "text",
		"RELAY_LOG_LEVEL":         "info",
		"RELAY_SHUTDOWN_GRACE":    "1s",
		prefix + "_ACCESS_DOMAIN": "127.0.0.1",
		prefix + "_UPSTREAM":      upstream,
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

// newFront splits traffic between the relay (reads) and the upstream
// (writes and upload sessions), keeping the client's Host on both.
func newFront(relay, upstream *url.URL, libraryPatch bool, logger *log.Logger) http.Handler {
	var n atomic.Int64
	proxy := func(target *url.URL, leg string) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host
				if leg == "upstream" && libraryPatch {
					pr.Out.URL.Path, pr.Out.URL.RawPath = patchLibrary(pr.Out.URL.Path), ""
					// a cross-repository mount names its source in ?from=
					if q := pr.Out.URL.Query(); q.Get("from") != "" && !strings.Contains(q.Get("from"), "/") {
						q.Set("from", "library/"+q.Get("from"))
						pr.Out.URL.RawQuery = q.Encode()
					}
				}
			},
			ModifyResponse: func(resp *http.Response) error {
				logger.Printf("#%d %-8s %s %s -> %d", n.Add(1), leg, resp.Request.Method, resp.Request.URL.RequestURI(), resp.StatusCode)
				return nil
			},
		}
	}
	toRelay, toUpstream := proxy(relay, "relay"), proxy(upstream, "upstream")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.Contains(r.URL.Path, "/blobs/uploads/") {
			toRelay.ServeHTTP(w, r)
			return
		}
		toUpstream.ServeHTTP(w, r)
	})
}

// patchLibrary mirrors the relay's Docker Hub patch for the write leg:
// /v2/<one-segment>/… becomes /v2/library/<one-segment>/….
func patchLibrary(p string) string {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return p
	}
	for _, kw := range []string{"/blobs/", "/manifests/", "/tags/", "/referrers/"} {
		if i := strings.Index(rest, kw); i > 0 {
			if strings.Contains(rest[:i], "/") {
				return p
			}
			return "/v2/library/" + rest
		}
	}
	return p
}

type seeded struct{ tags, manifests, blobs, referrers []string }

// seedReadOnly pushes an OCI index (two platforms) and a Docker image to
// repo and returns what the suite's OCI_RO_DATA_* variables need.
func seedReadOnly(reg *relaytest.Registry, repo string) (*seeded, error) {
	ctx := context.Background()
	out := &seeded{}
	addImage := func(img v1.Image) error {
		d, err := img.Digest()
		if err != nil {
			return err
		}
		out.manifests = append(out.manifests, d.String())
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		out.blobs = append(out.blobs, m.Config.Digest.String())
		for _, l := range m.Layers {
			out.blobs = append(out.blobs, l.Digest.String())
		}
		return nil
	}
	idx, err := relaytest.NewRandomIndex(types.OCIImageIndex, 1, 512)
	if err != nil {
		return nil, err
	}
	idxDigest, err := reg.PushIndex(ctx, repo+":ro-index", idx)
	if err != nil {
		return nil, err
	}
	out.tags = append(out.tags, "ro-index")
	out.manifests = append(out.manifests, idxDigest.String())
	out.referrers = append(out.referrers, idxDigest.String())
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, err
		}
		if err := addImage(img); err != nil {
			return nil, err
		}
	}
	img, err := relaytest.NewRandomImage(2, 512)
	if err != nil {
		return nil, err
	}
	if _, err := reg.PushImage(ctx, repo+":ro-image", img); err != nil {
		return nil, err
	}
	out.tags = append(out.tags, "ro-image")
	return out, addImage(img)
}

// runSuite runs the suite binary in s.dir with only env's OCI_* variables.
func runSuite(s runSpec, env map[string]string) (*report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.suite)
	cmd.Dir = s.dir // no stray oci-conformance.yaml
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OCI_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var envFile strings.Builder
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
		fmt.Fprintf(&envFile, "%s=%q\n", k, env[k])
	}
	if err := os.WriteFile(filepath.Join(s.dir, "env"), []byte(envFile.String()), 0o644); err != nil {
		return nil, err
	}
	stdout, err := os.Create(filepath.Join(s.dir, "out.txt"))
	if err != nil {
		return nil, err
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(s.dir, "err.txt"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	runErr := cmd.Run()
	var exitErr *exec.ExitError
	if runErr != nil && !errors.As(runErr, &exitErr) {
		return nil, runErr
	}
	rep, err := parseReport(filepath.Join(s.dir, "out.txt"))
	if err != nil {
		return nil, err
	}
	rep.exitCode = cmd.ProcessState.ExitCode()
	if b, err := os.ReadFile(filepath.Join(s.dir, "err.txt")); err == nil && strings.Contains(string(b), "panic:") {
		rep.panicked = true
	}
	return rep, nil
}

// leaf is one innermost test of the suite's result tree.
type leaf struct {
	name, status string
	errs         []string
}

type report struct {
	leaves   []leaf
	totals   map[string]int // from the "OCI Conformance Result" block
	exitCode int
	panicked bool // the suite crashed after its report (results.yaml on read-only data)
}

var (
	treeLine  = regexp.MustCompile(`^( *)(OCI Conformance Test[^:]*): (Pass|FAIL|Skip|Error|Disabled)$`)
	totalLine = regexp.MustCompile(`^  (Disabled|Skip|Pass|FAIL|Error|Total)\.*: +(\d+)$`)
)

// parseReport reads the suite's stdout: the "Test results" tree, whose
// leaves are the individual tests, and the totals.
func parseReport(path string) (*report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type node struct {
		indent int
		leaf
	}
	var nodes []node
	rep := &report{totals: map[string]int{}}
	section := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "Test results":
			section = "tree"
			continue
		case strings.HasPrefix(l, "Configuration:"):
			section = ""
		case strings.HasPrefix(l, "OCI Conformance Result:"):
			section = "totals"
			continue
		}
		switch section {
		case "tree":
			if m := treeLine.FindStringSubmatch(l); m != nil {
				nodes = append(nodes, node{len(m[1]), leaf{name: m[2], status: m[3]}})
			} else if len(nodes) > 0 && strings.TrimSpace(l) != "" {
				last := &nodes[len(nodes)-1]
				last.errs = append(last.errs, strings.TrimSpace(l))
			}
		case "totals":
			if m := totalLine.FindStringSubmatch(l); m != nil {
				var n int
				fmt.Sscan(m[2], &n)
				rep.totals[m[1]] = n
			} else if strings.TrimSpace(l) == "" {
				section = ""
			}
		}
	}
	for i, n := range nodes {
		if i+1 < len(nodes) && nodes[i+1].indent > n.indent {
			continue
		}
		rep.leaves = append(rep.leaves, n.leaf)
	}
	if len(rep.leaves) == 0 {
		return nil, fmt.Errorf("%s: no test results found", path)
	}
	return rep, sc.Err()
}

// workflow sorts a leaf into the suite's old workflow names.
func workflow(name string) string {
	parts := strings.Split(name, "/")
	last, parent := parts[len(parts)-1], ""
	if len(parts) > 2 {
		parent = parts[len(parts)-2]
	}
	switch {
	case last == "ping":
		return "ping"
	case last == "tag list" || last == "tag-list" || last == "referrers":
		return "discovery"
	case strings.HasSuffix(last, "-delete"):
		return "management"
	case last == "blob-get", last == "blob-head", strings.HasPrefix(last, "manifest-head-by-"),
		strings.HasPrefix(last, "range "), last == "get-missing", last == "manifest-get",
		parent == "missing-manifest",
		parent == "pull" && strings.HasPrefix(last, "manifest-by-"):
		return "pull"
	}
	return "push"
}

var workflows = []string{"ping", "pull", "discovery", "push", "management"}

type counts struct{ pass, fail, skip, disabled int }

func (c counts) String() string {
	return fmt.Sprintf("%d/%d/%d/%d", c.pass, c.fail, c.skip, c.disabled)
}

func (r *report) byWorkflow() map[string]counts {
	out := map[string]counts{}
	for _, l := range r.leaves {
		c := out[workflow(l.name)]
		switch l.status {
		case "Pass":
			c.pass++
		case "FAIL", "Error":
			c.fail++
		case "Skip":
			c.skip++
		case "Disabled":
			c.disabled++
		}
		out[workflow(l.name)] = c
	}
	return out
}

type row struct {
	auth, profile string
	direct, relay *report
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintf(w, "\ncounts are pass/fail/skip/disabled leaf tests; 'suite' is the suite's own Pass/FAIL/Skip/Disabled totals\n")
	fmt.Fprintf(w, "%-6s %-9s %-7s %-16s", "auth", "profile", "leg", "suite")
	for _, wf := range workflows {
		fmt.Fprintf(w, " %-12s", wf)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		for _, leg := range []struct {
			name string
			rep  *report
		}{{"direct", r.direct}, {"relay", r.relay}} {
			t := leg.rep.totals
			suite := fmt.Sprintf("%d/%d/%d/%d", t["Pass"], t["FAIL"]+t["Error"], t["Skip"], t["Disabled"])
			if leg.rep.panicked {
				suite += " (crash)"
			}
			fmt.Fprintf(w, "%-6s %-9s %-7s %-16s", r.auth, r.profile, leg.name, suite)
			wc := leg.rep.byWorkflow()
			for _, wf := range workflows {
				fmt.Fprintf(w, " %-12s", wc[wf])
			}
			fmt.Fprintln(w)
		}
	}
}

// printRegressions lists tests whose name passes more often directly than
// through the relay (names repeat, one per blob or manifest, so the
// comparison is by count), with the relay leg's errors for them.
func printRegressions(w io.Writer, auth, profile string, direct, relay *report) int {
	pass := func(r *report) map[string]int {
		m := map[string]int{}
		for _, l := range r.leaves {
			if l.status == "Pass" {
				m[l.name]++
			}
		}
		return m
	}
	dp, rp := pass(direct), pass(relay)
	var names []string
	for n, c := range dp {
		if rp[n] < c {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	total := 0
	for _, n := range names {
		total += dp[n] - rp[n]
		fmt.Fprintf(w, "REGRESSION %s/%s: %s passes %d× directly, %d× through the relay\n", auth, profile, n, dp[n], rp[n])
		seen := map[string]bool{}
		for _, l := range relay.leaves {
			if l.name != n || l.status == "Pass" {
				continue
			}
			for _, e := range l.errs {
				if !seen[e] {
					seen[e] = true
					fmt.Fprintf(w, "    %s\n", truncate(e, 400))
				}
			}
		}
	}
	return total
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
