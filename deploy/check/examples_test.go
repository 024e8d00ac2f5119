package check

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/pelletier/go-toml/v2"
)

// exampleRoutes are the routes with an access domain of their own that
// the relay serves with RELAY_BASE_DOMAIN=example.com, as the examples use.
func exampleRoutes(t *testing.T) []route {
	t.Helper()
	return startRelay(t, map[string]string{"RELAY_BASE_DOMAIN": "example.com"}).servedRoutes(t)
}

// decodeTOML decodes strictly: a misspelt key fails instead of being
// ignored by the client that reads the file.
func decodeTOML(t *testing.T, rel string, v any) {
	t.Helper()
	err := toml.NewDecoder(bytes.NewReader(readRepoFile(t, rel))).DisallowUnknownFields().Decode(v)
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		t.Fatalf("%s: unknown keys:\n%s", rel, strict.String())
	}
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// TestContainerdHostsToml: one certs.d/<registry>/hosts.toml per route,
// falling back to the registry and mirrored by the route's access domain.
func TestContainerdHostsToml(t *testing.T) {
	routes := exampleRoutes(t)
	dirs, err := filepath.Glob(repoPath("examples/containerd/certs.d/*"))
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, d := range dirs {
		got = append(got, filepath.Base(d))
	}
	for _, r := range routes {
		want = append(want, clientRegistry(r))
		if _, err := os.Stat(repoPath("examples/containerd/certs.d/" + clientRegistry(r))); err != nil {
			continue // named by checkSet below
		}
		var h struct {
			Server string `toml:"server"`
			Host   map[string]struct {
				Capabilities []string `toml:"capabilities"`
			} `toml:"host"`
		}
		rel := "examples/containerd/certs.d/" + clientRegistry(r) + "/hosts.toml"
		decodeTOML(t, rel, &h)
		if h.Server != "https://"+r.upstream {
			t.Errorf("%s: server = %q, want https://%s", rel, h.Server, r.upstream)
		}
		mirror, ok := h.Host["https://"+r.host]
		if len(h.Host) != 1 || !ok || !slices.Equal(mirror.Capabilities, []string{"pull", "resolve"}) {
			t.Errorf("%s: want exactly [host.\"https://%s\"] with capabilities [pull resolve], got %+v", rel, r.host, h.Host)
		}
	}
	checkSet(t, "examples/containerd/certs.d (one directory per route's registry)", got, want)
}

// TestRegistriesConf: one [[registry]] per route with the route's access
// domain as its only mirror, read strictly here and by podman if present.
func TestRegistriesConf(t *testing.T) {
	const rel = "examples/containers/registries.conf"
	var conf struct {
		Registry []struct {
			Prefix   string `toml:"prefix"`
			Location string `toml:"location"`
			Mirror   []struct {
				Location string `toml:"location"`
			} `toml:"mirror"`
		} `toml:"registry"`
	}
	decodeTOML(t, rel, &conf)
	want := map[string]string{} // registry -> mirror location
	for _, r := range exampleRoutes(t) {
		want[clientRegistry(r)] = r.host
	}
	got := map[string]string{}
	for _, reg := range conf.Registry {
		if reg.Prefix != reg.Location || len(reg.Mirror) != 1 {
			t.Errorf("%s: [[registry]] %s: want prefix = location and one mirror", rel, reg.Location)
			continue
		}
		got[reg.Location] = reg.Mirror[0].Location
	}
	var gotPairs, wantPairs []string
	for reg, mirror := range got {
		gotPairs = append(gotPairs, reg+" -> "+mirror)
	}
	for reg, mirror := range want {
		wantPairs = append(wantPairs, reg+" -> "+mirror)
	}
	checkSet(t, rel+"'s [[registry]] mirrors", gotPairs, wantPairs)

	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Log("podman not installed: registries.conf checked by the TOML reader only")
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(podman, "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"),
		"--storage-driver", "vfs", "info", "--format", "{{json .Registries}}")
	cmd.Env = append(os.Environ(), "CONTAINERS_REGISTRIES_CONF="+repoPath(rel))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("podman info with %s: %v", rel, err)
	}
	var seen map[string]struct {
		Mirrors []struct{ Location string }
	}
	if err := json.Unmarshal(out, &seen); err != nil {
		t.Fatalf("podman info: %v\n%s", err, out)
	}
	for reg, mirror := range want {
		if m := seen[reg].Mirrors; len(m) != 1 || m[0].Location != mirror {
			t.Errorf("podman reads %s's mirrors as %+v, want %s", reg, m, mirror)
		}
	}
}

// TestDockerDaemonJSON: Docker Hub mirrored by its route's host, and the
// hosts of `make run` (base localhost, plain http) as insecure registries.
func TestDockerDaemonJSON(t *testing.T) {
	const rel = "examples/docker/daemon.json"
	var conf struct {
		RegistryMirrors    []string `json:"registry-mirrors"`
		InsecureRegistries []string `json:"insecure-registries"`
	}
	dec := json.NewDecoder(bytes.NewReader(readRepoFile(t, rel)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&conf); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	hub := startRelay(t, map[string]string{"RELAY_BASE_DOMAIN": "example.com"}).routeHost(t, "dockerhub")
	if !slices.Equal(conf.RegistryMirrors, []string{"https://" + hub}) {
		t.Errorf("%s: registry-mirrors = %v, want [https://%s]", rel, conf.RegistryMirrors, hub)
	}
	vars := readmeVars(t)
	listen := strconv.Itoa(int(port(t, vars.defaults["RELAY_LISTEN"])))
	var local []string
	for _, h := range servedHosts(t, vars, map[string]string{}) { // make run: all defaults
		local = append(local, h+":"+listen)
	}
	checkSet(t, rel+"'s insecure-registries (the hosts of `make run`)", conf.InsecureRegistries, local)
}

var envLine = regexp.MustCompile(`^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$`)

// TestDotEnv: examples/.env names every variable of the README once, and
// the relay starts both with its settings and with every default in it
// uncommented.
func TestDotEnv(t *testing.T) {
	const rel = "examples/.env"
	active, all := map[string]string{}, map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, rel)))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		m := envLine.FindStringSubmatch(line)
		switch {
		case m != nil:
			if _, dup := all[m[2]]; dup {
				t.Errorf("%s:%d: %s appears twice", rel, n, m[2])
			}
			all[m[2]] = m[3]
			if m[1] == "" {
				active[m[2]] = m[3]
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			t.Errorf("%s:%d: not NAME=value: %q", rel, n, line)
		}
	}
	vars := readmeVars(t)
	vars.checkKnown(t, rel, all)
	for name := range vars.defaults {
		if _, ok := all[name]; !ok {
			t.Errorf("%s lacks %s", rel, name)
		}
	}
	startRelay(t, active)
	startRelay(t, all)
}

// TestCompose loads examples/docker-compose.yml with the Compose
// specification's loader (schema, interpolation, env_file) and checks that
// Caddy reaches the relay, which trusts Caddy's network, and that both
// stop in time.
func TestCompose(t *testing.T) {
	dir := repoPath("examples")
	opts, err := cli.NewProjectOptions([]string{filepath.Join(dir, "docker-compose.yml")},
		cli.WithWorkingDirectory(dir), cli.WithEnvFiles(), cli.WithDotEnv)
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	relay, caddy := project.Services["relay"], project.Services["caddy"]
	if relay.Build == nil || relay.Build.Context != repoRoot {
		t.Errorf("relay: want build context %s (the Dockerfile's)", repoRoot)
	}
	env := map[string]string{}
	for k, v := range relay.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	vars := readmeVars(t)
	vars.checkKnown(t, "docker-compose.yml relay", env)
	startRelay(t, env)
	if got, want := deref(caddy.Environment["RELAY_BACKEND"]), "relay:"+strconv.Itoa(int(port(t, vars.effective(env, "RELAY_LISTEN")))); got != want {
		t.Errorf("caddy: RELAY_BACKEND = %q, want %q", got, want)
	}
	if deref(caddy.Environment["RELAY_BASE_DOMAIN"]) != env["RELAY_BASE_DOMAIN"] {
		t.Error("caddy and relay must share RELAY_BASE_DOMAIN")
	}
	if !slices.ContainsFunc(caddy.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Target == "/etc/caddy/Caddyfile" && v.Source == repoPath(caddyfile)
	}) {
		t.Errorf("caddy: want %s mounted at /etc/caddy/Caddyfile", caddyfile)
	}
	checkComposeTrust(t, project, vars.effective(env, "RELAY_TRUSTED_PROXIES"))
	delay := duration(t, vars.effective(env, "RELAY_SHUTDOWN_DELAY"))
	grace := duration(t, vars.effective(env, "RELAY_SHUTDOWN_GRACE"))
	if relay.StopGracePeriod == nil || time.Duration(*relay.StopGracePeriod) <= delay+grace {
		t.Errorf("relay: stop_grace_period must exceed RELAY_SHUTDOWN_DELAY + RELAY_SHUTDOWN_GRACE = %s", delay+grace)
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// checkComposeTrust: the relay trusts Caddy's own address and nothing else
// on the networks they share. The rest of such a network includes its
// gateway, i.e. every process on the Docker host, and whatever container
// joins it later; each could name any client in X-Forwarded-For.
func checkComposeTrust(t *testing.T, project *types.Project, list string) {
	t.Helper()
	trusted := trustedProxies(t, list)
	for network, cfg := range project.Services["caddy"].Networks {
		if cfg == nil || cfg.Ipv4Address == "" {
			t.Errorf("caddy: want a fixed ipv4_address on network %s, for RELAY_TRUSTED_PROXIES to name", network)
			continue
		}
		caddyAddr, err := netip.ParseAddr(cfg.Ipv4Address)
		if err != nil {
			t.Fatalf("caddy: ipv4_address %q: %v", cfg.Ipv4Address, err)
		}
		if !slices.ContainsFunc(trusted, func(p netip.Prefix) bool { return p.Contains(caddyAddr) }) {
			t.Errorf("relay: RELAY_TRUSTED_PROXIES must hold Caddy's address %s, or realms come out http", caddyAddr)
		}
		for _, pool := range project.Networks[network].Ipam.Config {
			subnet, err := netip.ParsePrefix(pool.Subnet)
			if err != nil {
				t.Fatalf("network %s: subnet %q: %v", network, pool.Subnet, err)
			}
			for _, p := range trusted {
				if p.Overlaps(subnet) && p != netip.PrefixFrom(caddyAddr, caddyAddr.BitLen()) {
					t.Errorf("relay: RELAY_TRUSTED_PROXIES trusts %s on network %s beyond Caddy's %s: the host (its gateway) or another container could claim any client address", p, subnet, caddyAddr)
				}
			}
		}
	}
}
