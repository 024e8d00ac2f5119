package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

const caddyfile = "deploy/caddy/Caddyfile"

// caddyCmd runs Caddy with its state (certificates, autosave) under
// stateDir and the given environment added.
func caddyCmd(caddy, stateDir string, env []string, args ...string) *exec.Cmd {
	dir := stateDir
	cmd := exec.Command(caddy, args...)
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_DATA_HOME="+filepath.Join(dir, "data"), "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// TestCaddyfile validates the Caddyfile with Caddy and checks its adapted
// JSON: the sites are exactly the relay's access domains, responses are
// flushed as they come, transport timeouts allow slow transfers, and
// nothing re-encodes bodies.
func TestCaddyfile(t *testing.T) {
	caddy := needTool(t, "caddy", "apt-get install caddy")
	env := []string{"RELAY_BASE_DOMAIN=example.com"}
	if out, err := caddyCmd(caddy, t.TempDir(), env, "validate", "--config", repoPath(caddyfile), "--adapter", "caddyfile").CombinedOutput(); err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	out, err := caddyCmd(caddy, t.TempDir(), env, "adapt", "--config", repoPath(caddyfile), "--adapter", "caddyfile").Output()
	if err != nil {
		t.Fatalf("caddy adapt: %v", err)
	}
	var cfg any
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatal(err)
	}
	var hosts []string
	var handlers []map[string]any
	walkCaddyJSON(cfg, &hosts, &handlers)
	want := servedHosts(t, readmeVars(t), map[string]string{"RELAY_BASE_DOMAIN": "example.com"})
	checkSet(t, caddyfile+"'s sites (with RELAY_BASE_DOMAIN=example.com)", hosts, want)
	proxies := 0
	for _, h := range handlers {
		switch h["handler"] {
		case "encode":
			t.Error("an encode handler changes bodies and breaks digests")
		case "reverse_proxy":
			proxies++
			if h["flush_interval"] != float64(-1) {
				t.Errorf("reverse_proxy flush_interval = %v, want -1 (stream)", h["flush_interval"])
			}
			tr, _ := h["transport"].(map[string]any)
			for _, k := range []string{"read_timeout", "write_timeout"} {
				if d, _ := tr[k].(float64); time.Duration(d) < 5*time.Minute {
					t.Errorf("reverse_proxy transport %s = %v, want >= 5m for slow transfers", k, time.Duration(d))
				}
			}
		}
	}
	if proxies != 1 {
		t.Errorf("want one reverse_proxy to the relay, found %d", proxies)
	}
}

// walkCaddyJSON collects the host matchers and handlers of a Caddy config.
func walkCaddyJSON(v any, hosts *[]string, handlers *[]map[string]any) {
	switch v := v.(type) {
	case map[string]any:
		if _, ok := v["handler"]; ok {
			*handlers = append(*handlers, v)
		}
		if ms, ok := v["match"].([]any); ok {
			for _, m := range ms {
				hs, _ := m.(map[string]any)["host"].([]any)
				for _, h := range hs {
					*hosts = append(*hosts, h.(string))
				}
			}
		}
		for _, c := range v {
			walkCaddyJSON(c, hosts, handlers)
		}
	case []any:
		for _, c := range v {
			walkCaddyJSON(c, hosts, handlers)
		}
	}
}

// TestPullThroughCaddy pulls an image with go-containerregistry through the
// Caddyfile's Caddy (certificates from its internal CA instead of Let's
// Encrypt, on free ports) and the relay as the systemd unit configures it,
// from a local upstream with token auth. Token realms must come back as
// https: Caddy's X-Forwarded-Proto is trusted from loopback.
func TestPullThroughCaddy(t *testing.T) {
	caddy := needTool(t, "caddy", "apt-get install caddy")
	vars := readmeVars(t)
	unit := readUnit(t)
	backend := regexp.MustCompile(`\{\$RELAY_BACKEND:([^}]+)\}`).FindSubmatch(readRepoFile(t, caddyfile))
	if backend == nil || string(backend[1]) != unit.env["RELAY_LISTEN"] {
		t.Fatalf("the Caddyfile's default RELAY_BACKEND must be the unit's RELAY_LISTEN %q", unit.env["RELAY_LISTEN"])
	}
	up := newUpstream(t)
	env := map[string]string{"RELAY_BASE_DOMAIN": "example.test", "DOCKERHUB_UPSTREAM": up.url}
	for k, v := range unit.env {
		env[k] = v
	}
	relay := startRelay(t, env)

	dir := t.TempDir()
	httpsAddr := freeAddr(t)
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)
	_, httpPort, _ := net.SplitHostPort(freeAddr(t))
	config := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(testCaddyfile(t, httpPort, httpsPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := caddyCmd(caddy, dir, []string{"RELAY_BASE_DOMAIN=example.test", "RELAY_BACKEND=" + relay.addr},
		"run", "--config", config, "--adapter", "caddyfile")
	rootCA := filepath.Join(dir, "data", "caddy", "pki", "authorities", "local", "root.crt")
	tr := &http.Transport{
		// Every name resolves to Caddy.
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, httpsAddr)
		},
		TLSClientConfig: &tls.Config{RootCAs: x509.NewCertPool()},
	}
	startProcess(t, cmd, func() error {
		pem, err := os.ReadFile(rootCA)
		if err != nil {
			return err
		}
		tr.TLSClientConfig.RootCAs.AppendCertsFromPEM(pem)
		resp, err := (&http.Client{Transport: tr}).Get("https://dhcr.example.test/")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})

	resp, err := (&http.Client{Transport: tr}).Get("https://dhcr.example.test/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `realm="https://dhcr.example.test/token/`) {
		t.Fatalf("GET /v2/ through Caddy: %s, challenge %q; want 401 with an https realm on the access domain", resp.Status, ch)
	}
	want, err := up.image.Digest()
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"dhcr.example.test", mirrorHost(vars, env)} {
		ref, err := name.ParseReference(host + "/" + up.repo + ":1")
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(ref, remote.WithTransport(tr))
		if err != nil {
			t.Fatalf("pulling %s through Caddy: %v", ref, err)
		}
		if got, err := img.Digest(); err != nil || got != want {
			t.Errorf("%s: digest %v (%v), want %v", ref, got, err, want)
		}
		// Reads every layer and checks every digest.
		if err := validate.Image(img); err != nil {
			t.Errorf("%s: %v", ref, err)
		}
	}
}

// testCaddyfile is the Caddyfile with global options for a test: its own
// ports, certificates from Caddy's internal CA, no admin endpoint, and
// nothing installed into the system's trust store.
func testCaddyfile(t *testing.T, httpPort, httpsPort string) string {
	t.Helper()
	opts := "\tlocal_certs\n\tskip_install_trust\n\tadmin off\n\thttp_port " + httpPort + "\n\thttps_port " + httpsPort + "\n"
	lines := strings.SplitAfter(string(readRepoFile(t, caddyfile)), "\n")
	first := slices.IndexFunc(lines, func(l string) bool {
		s := strings.TrimSpace(l)
		return s != "" && !strings.HasPrefix(s, "#")
	})
	if first >= 0 && strings.TrimSpace(lines[first]) == "{" { // the global options block
		return strings.Join(slices.Insert(lines, first+1, opts), "")
	}
	return "{\n" + opts + "}\n" + strings.Join(lines, "")
}
