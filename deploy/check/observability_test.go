package check

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/yaml"
)

// Files whose PromQL must only name metrics the relay exports.
var promqlFiles = []string{
	"deploy/grafana/registry-relay.json",
	"deploy/prometheus/alerts.yml",
	"deploy/prometheus/alerts_test.yml",
}

// metricRef finds metric names of the relay's own and its Go and process
// collectors; label names and Grafana variables never start like this.
var metricRef = regexp.MustCompile(`\b(?:relay|go|process)_[a-z0-9_]*[a-z0-9]\b`)

func TestMetricNamesExist(t *testing.T) {
	base := build(t, "deploy/k8s/base")
	exported := exportedNames(exercisedRelay(t, base.cm.Data).scrape(t))
	for _, file := range promqlFiles {
		refs := map[string]bool{}
		for _, name := range metricRef.FindAllString(string(readRepoFile(t, file)), -1) {
			refs[name] = true
		}
		if len(refs) == 0 {
			t.Errorf("%s names no relay metric", file)
		}
		for name := range refs {
			if !exported[name] {
				t.Errorf("%s uses %s, which the relay does not export", file, name)
			}
		}
	}
}

// exportedNames lists the series names of a scrape as PromQL sees them:
// a histogram is its _bucket, _sum and _count series.
func exportedNames(families map[string]*dto.MetricFamily) map[string]bool {
	names := map[string]bool{}
	for name, f := range families {
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

func TestAlertRules(t *testing.T) {
	promtool := needTool(t, "promtool", "apt-get install prometheus")
	dir := repoPath("deploy/prometheus")
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// dashboard is the part of Grafana's dashboard model the checks read.
type dashboard struct {
	Panels []struct {
		ID         int    `json:"id"`
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		GridPos struct{ X, Y, W, H int } `json:"gridPos"`
		Targets []struct {
			RefID string `json:"refId"`
			Expr  string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	if err := json.Unmarshal(readRepoFile(t, "deploy/grafana/registry-relay.json"), &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	return d
}

func TestDashboardLayout(t *testing.T) {
	ids := map[int]bool{}
	for _, p := range readDashboard(t).Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if p.GridPos.W < 1 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside Grafana's 24 columns", p.Title, p.GridPos)
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: want the ${datasource} variable as data source, so imports pick theirs", p.Title)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, q := range p.Targets {
			if q.Expr == "" || q.RefID == "" || refs[q.RefID] {
				t.Errorf("panel %q: every query needs an expr and its own refId", p.Title)
			}
			refs[q.RefID] = true
		}
	}
}

// TestDashboardQueriesParse has promtool parse every panel query, with
// Grafana's variables replaced by what Grafana would send.
func TestDashboardQueriesParse(t *testing.T) {
	promtool := needTool(t, "promtool", "apt-get install prometheus")
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$route", ".*", "$job", ".*")
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	for _, p := range readDashboard(t).Panels {
		for _, q := range p.Targets {
			rules = append(rules, rule{fmt.Sprintf("dashboard:panel_%d_%s", p.ID, q.RefID), grafanaVars.Replace(q.Expr)})
		}
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].Record < rules[j].Record })
	doc, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard-queries.yml")
	if err := os.WriteFile(path, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput(); err != nil {
		t.Errorf("dashboard queries do not parse: %v\n%s", err, out)
	}
}
