package check

import (
	"fmt"
	"net/http"
	"os/exec"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// relayProc is a running relay binary on loopback.
type relayProc struct {
	addr  string // registry listener, host:port
	admin string // admin listener, host:port
}

// startRelay runs the relay with exactly env (nothing inherited), its
// listeners moved to free loopback ports, until the test ends. A relay
// that refuses the configuration fails the test with its message.
func startRelay(t *testing.T, env map[string]string) *relayProc {
	t.Helper()
	p := &relayProc{addr: freeAddr(t), admin: freeAddr(t)}
	cmd := exec.Command(relayBin)
	cmd.Env = []string{"RELAY_LISTEN=" + p.addr, "RELAY_ADMIN_LISTEN=" + p.admin}
	for k, v := range env {
		if k != "RELAY_LISTEN" && k != "RELAY_ADMIN_LISTEN" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	startProcess(t, cmd, func() error {
		resp, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz: %s", resp.Status)
		}
		return nil
	})
	return p
}

// get sends GET path to the relay with the given Host header.
func (p *relayProc) get(t *testing.T, host, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+p.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// scrape reads the relay's /metrics.
func (p *relayProc) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing /metrics: %v", err)
	}
	return families
}

// route is one relay_route_info series: what the relay really serves.
type route struct{ name, host, upstream string }

// routes returns the relay's routes from relay_route_info, sorted by name.
func (p *relayProc) routes(t *testing.T) []route {
	t.Helper()
	fam := p.scrape(t)["relay_route_info"]
	if fam == nil {
		t.Fatal("relay_route_info missing from /metrics")
	}
	var rs []route
	for _, m := range fam.GetMetric() {
		var r route
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "route":
				r.name = l.GetValue()
			case "host":
				r.host = l.GetValue()
			case "upstream":
				r.upstream = l.GetValue()
			}
		}
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	return rs
}

// answers reports whether the relay serves host: GET / there is the
// relay's own description, while an unknown host gets 404.
func (p *relayProc) answers(t *testing.T, host string) bool {
	t.Helper()
	resp := p.get(t, host, "/")
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// servedRoutes is relay_route_info without the routes that have no access
// domain of their own (reached only through the mirror host).
func (p *relayProc) servedRoutes(t *testing.T) []route {
	t.Helper()
	var rs []route
	for _, r := range p.routes(t) {
		if p.answers(t, r.host) {
			rs = append(rs, r)
		}
	}
	return rs
}

// servedHosts starts the relay with env and returns every access domain it
// answers, sorted: the routes' and the mirror host's. The mirror's name is
// derived as the README says and must be answered too.
func servedHosts(t *testing.T, vars relayVars, env map[string]string) []string {
	t.Helper()
	p := startRelay(t, env)
	var hosts []string
	for _, r := range p.servedRoutes(t) {
		hosts = append(hosts, r.host)
	}
	if mirror := mirrorHost(vars, env); mirror != "" {
		if !p.answers(t, mirror) {
			t.Errorf("the relay does not answer the mirror host %s the README derives", mirror)
		}
		hosts = append(hosts, mirror)
	}
	sort.Strings(hosts)
	return hosts
}

// mirrorHost is the mirror's access domain under env, "" when disabled.
func mirrorHost(vars relayVars, env map[string]string) string {
	if strings.EqualFold(vars.effective(env, "MIRROR_ENABLED"), "false") {
		return ""
	}
	base := vars.effective(env, "RELAY_BASE_DOMAIN")
	return strings.ReplaceAll(vars.effective(env, "MIRROR_ACCESS_DOMAIN"), "<base>", base)
}

// clientRegistry is the name clients use for a route's upstream: its host,
// except Docker Hub, whose images are called docker.io/... while the
// registry API lives on registry-1.docker.io.
func clientRegistry(r route) string {
	if r.upstream == "registry-1.docker.io" {
		return "docker.io"
	}
	return r.upstream
}

// routeHost is the access domain of the named route.
func (p *relayProc) routeHost(t *testing.T, name string) string {
	t.Helper()
	for _, r := range p.routes(t) {
		if r.name == name {
			return r.host
		}
	}
	t.Fatalf("the relay has no route %s", name)
	return ""
}
