//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// Access domains of the relay under test. Go programs, skopeo, podman and
// containerd do not resolve *.localhost here, so ensureHosts maps these
// names to 127.0.0.1 in /etc/hosts (the suite runs as root in CI).
const (
	hubDomain     = "dhcr.relay-e2e.test"
	ghcrDomain    = "ghcr.relay-e2e.test"
	k8sDomain     = "k8s.relay-e2e.test"
	unknownDomain = "nothing.relay-e2e.test"
	downDomain    = "quay.relay-e2e.test"
	mirrorDomain  = "mirror.relay-e2e.test"
)

// credential is a username and password a client logs in with.
type credential struct{ user, password string }

var (
	// upstreamUser is the one user the token issuer knows besides its admin.
	upstreamUser = credential{"e2e-user", "e2e-password"}
	// relayUser is an account of the relay itself (RELAY_HTPASSWD_FILE).
	relayUser = credential{"relay-user", "relay-password"}
)

// tool returns the path of a binary from -bin, or from PATH.
func tool(name string) (string, bool) {
	if *binDir != "" {
		p := filepath.Join(*binDir, name)
		if _, err := os.Stat(p); err == nil {
			return p, true
		}
	}
	p, err := exec.LookPath(name)
	return p, err == nil
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startProcess runs a long-lived server until the test ends, with its
// output in a log file that is printed if the test fails.
func startProcess(t testing.TB, name string, env []string, args ...string) {
	t.Helper()
	bin, ok := tool(name)
	if !ok {
		t.Fatalf("%s not found; run `make e2e`, which installs it", name)
	}
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			if out, err := os.ReadFile(logPath); err == nil {
				t.Logf("--- %s log (last 4 KiB) ---\n%s", name, tail(out, 4096))
			}
		}
	})
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// waitHTTP polls url until it answers with any status.
func waitHTTP(t testing.TB, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not come up", url)
}

// startRegistry runs the distribution registry binary with filesystem
// storage, with token auth against issuer when it is not nil.
func startRegistry(t testing.TB, issuer *relaytest.TokenIssuer) string {
	t.Helper()
	addr := freeAddr(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %s}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: %s, secret: e2e-secret}
`, filepath.Join(dir, "data"), addr)
	if issuer != nil {
		config += fmt.Sprintf("auth:\n  token: {realm: %q, service: %q, issuer: %q, rootcertbundle: %q}\n",
			issuer.Realm, issuer.Service, issuer.Issuer, issuer.RootCertBundle())
	}
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "registry", []string{"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none"}, "serve", path)
	waitHTTP(t, "http://"+addr+"/v2/")
	return "http://" + addr
}

// relayProcess is the registry-relay binary under test.
type relayProcess struct {
	addr, adminAddr string
	port            string
}

func startRelay(t testing.TB, env map[string]string) *relayProcess {
	t.Helper()
	r := &relayProcess{addr: freeAddr(t), adminAddr: freeAddr(t)}
	_, r.port, _ = net.SplitHostPort(r.addr)
	vars := []string{"RELAY_LISTEN=" + r.addr, "RELAY_ADMIN_LISTEN=" + r.adminAddr, "RELAY_LOG_LEVEL=warn"}
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	startProcess(t, "registry-relay", vars)
	waitHTTP(t, "http://"+r.adminAddr+"/readyz")
	return r
}

// host is an access domain with the relay's port, as clients address it.
func (r *relayProcess) host(domain string) string { return domain + ":" + r.port }

// ensureHosts maps the access domains to 127.0.0.1 in /etc/hosts.
func ensureHosts(t testing.TB) {
	t.Helper()
	names := []string{hubDomain, ghcrDomain, k8sDomain, unknownDomain, downDomain, mirrorDomain}
	current, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, n := range names {
		if !strings.Contains(string(current), " "+n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return
	}
	f, err := os.OpenFile("/etc/hosts", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("access domains do not resolve and /etc/hosts is not writable (%v): run as root", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "\n127.0.0.1 %s # registry-relay e2e\n", strings.Join(missing, " ")); err != nil {
		t.Fatal(err)
	}
}

// run executes a client command with a timeout and returns its combined output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	bin, ok := tool(name)
	if !ok {
		return "", fmt.Errorf("%s not installed", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
