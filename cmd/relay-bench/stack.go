package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// target is one way to reach the seeded registry: directly or through a proxy.
type target struct {
	name string
	base string // http://127.0.0.1:PORT
	host string // Host header to send; "" keeps the URL's
	proc *proc  // the proxy process whose CPU is counted; nil for direct
	// blobPath overrides where a blob is fetched (nginx's static files).
	blobPath func(digest string) string
	admin    string // relay admin base URL, for /metrics
}

// blobURL is where the target serves the blob with this digest.
func (t *target) blobURL(repo, digest string) string {
	if t.blobPath != nil {
		return t.base + t.blobPath(digest)
	}
	return t.base + "/v2/" + repo + "/blobs/" + digest
}

func (t *target) manifestURL(repo, ref string) string {
	return t.base + "/v2/" + repo + "/manifests/" + ref
}

// stack owns every process and temporary directory of a run.
type stack struct {
	dir   string // temporary root, removed by close
	bin   string // directory of registry-relay and registry
	procs []*proc
	// authHost is the token issuer's host:port, for DOCKERHUB_AUTH_HOSTS.
	authHost string
}

func (s *stack) close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		s.procs[i].stop()
	}
	_ = os.RemoveAll(s.dir)
}

func (s *stack) start(ctx context.Context, name, bin string, env []string, readyURL string, args ...string) (*proc, error) {
	p, err := startProc(name, s.dir, bin, env, args...)
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	if err := p.waitReady(ctx, readyURL); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

// startRegistry runs the distribution binary with filesystem storage in a
// directory of its own, with token auth against issuer when it is not nil.
// It returns the base URL and the storage root.
func (s *stack) startRegistry(ctx context.Context, name string, issuer *relaytest.TokenIssuer) (string, string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", "", err
	}
	root := filepath.Join(s.dir, name+"-data")
	config := fmt.Sprintf(`version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: %s}
  maintenance: {uploadpurging: {enabled: false}}
http: {addr: %s, secret: bench-secret}
`, root, addr)
	if issuer != nil {
		config += fmt.Sprintf("auth:\n  token: {realm: %q, service: %q, issuer: %q, rootcertbundle: %q}\n",
			issuer.Realm, issuer.Service, issuer.Issuer, issuer.RootCertBundle())
	}
	path := filepath.Join(s.dir, name+".yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		return "", "", err
	}
	env := []string{"OTEL_SDK_DISABLED=true", "OTEL_TRACES_EXPORTER=none"}
	base := "http://" + addr
	_, err = s.start(ctx, name, filepath.Join(s.bin, "registry"), env, base+"/v2/", "serve", path)
	return base, root, err
}

// relayVariants are the relay configurations measured as targets; one
// line adds one. A variant whose feature the relay lacks is dropped
// (see probeVariant).
var relayVariants = []relayVariant{
	{name: "relay"},
	{name: "relay+cache", env: map[string]string{"RELAY_CACHE_DIR": "{dir}"}, needsMetric: "relay_cache_requests_total"},
}

type relayVariant struct {
	name string
	env  map[string]string // "{dir}" becomes a fresh directory
	// needsMetric must appear on /metrics after one blob GET, else the
	// relay ignored the variant's settings.
	needsMetric string
}

// startRelay runs the relay binary with the k8s route (no library/
// rewriting) answering 127.0.0.1 and relaying to upstream, and the
// dockerhub route at hubHost relaying to tokenUpstream.
func (s *stack) startRelay(ctx context.Context, name, upstream, tokenUpstream string, extra map[string]string) (*target, error) {
	addr, err1 := freeAddr()
	admin, err2 := freeAddr()
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("free ports: %v %v", err1, err2)
	}
	env := []string{
		"RELAY_LISTEN=" + addr, "RELAY_ADMIN_LISTEN=" + admin,
		// warn: at info the relay logs one line per request.
		"RELAY_LOG_LEVEL=warn", "RELAY_BASE_DOMAIN=" + baseDomain,
		"RELAY_SHUTDOWN_DELAY=0s", "RELAY_PUBLIC_SCHEME=http",
		"K8S_ACCESS_DOMAIN=127.0.0.1", "K8S_UPSTREAM=" + upstream,
		"DOCKERHUB_UPSTREAM=" + tokenUpstream, "DOCKERHUB_AUTH_HOSTS=" + s.authHost,
	}
	for k, v := range extra {
		if v == "{dir}" {
			v = filepath.Join(s.dir, name+"-"+k)
		}
		env = append(env, k+"="+v)
	}
	p, err := s.start(ctx, name, filepath.Join(s.bin, "registry-relay"), env, "http://"+admin+"/readyz")
	if err != nil {
		return nil, err
	}
	return &target{name: name, base: "http://" + addr, proc: p, admin: "http://" + admin}, nil
}

// baseDomain names the relay's access domains; the load generator dials
// every name under it as 127.0.0.1, so nothing needs /etc/hosts.
const baseDomain = "bench.test"

// hubHost is the dockerhub route's access domain, used for the token flow.
const hubHost = "dhcr." + baseDomain

// lookTool finds a proxy binary on PATH or in /usr/sbin, where Debian
// puts nginx and which is not on a normal user's PATH; a missing one
// skips its target.
func lookTool(name string) (string, bool) {
	for _, p := range []string{name, filepath.Join("/usr/sbin", name)} {
		if path, err := exec.LookPath(p); err == nil {
			return path, true
		}
	}
	return "", false
}
