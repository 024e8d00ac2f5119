package check

import (
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The relay's table of built-in routes (internal/registry/builtin.go) is
// the one list of them. Every document that restates it is compared here
// with the routes the relay binary really serves, so a new table entry
// makes these tests name each line still to write.

// checkSet fails unless got and want hold the same strings, naming what
// is missing from where and what it has that the relay does not serve.
func checkSet(t *testing.T, where string, got, want []string) {
	t.Helper()
	var missing, extra []string
	for _, w := range want {
		if !slices.Contains(got, w) {
			missing = append(missing, w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			extra = append(extra, g)
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s lacks %s", where, strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		t.Errorf("%s has %s, which the relay does not serve", where, strings.Join(extra, ", "))
	}
	if len(missing) == 0 && len(extra) == 0 && len(got) != len(want) {
		t.Errorf("%s lists an entry twice: %v", where, got)
	}
}

// markdownTable returns the rows (cells trimmed, without the outer pipes)
// of the table whose header line starts with header in doc.
func markdownTable(t *testing.T, rel, doc, header string) [][]string {
	t.Helper()
	i := strings.Index(doc, "\n"+header)
	if i < 0 {
		t.Fatalf("%s: no table headed %q", rel, header)
	}
	var rows [][]string
	for n, line := range strings.Split(doc[i+1:], "\n") {
		if !strings.HasPrefix(line, "|") {
			break
		}
		if n < 2 { // header and separator
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for j := range cells {
			cells[j] = strings.TrimSpace(cells[j])
		}
		rows = append(rows, cells)
	}
	return rows
}

// unquote strips the backticks of a `code` cell.
func unquote(s string) string { return strings.Trim(s, "`") }

// TestReadmeRoutes: the README's route table, its <NAME> list and the
// subdomains of RELAY_BASE_DOMAIN's row are the relay's built-in routes.
func TestReadmeRoutes(t *testing.T) {
	const rel = "README.md"
	readme := string(readRepoFile(t, rel))
	routes := exampleRoutes(t)
	var rows, names, subs []string
	for _, r := range routes {
		sub := strings.TrimSuffix(r.host, ".example.com")
		rows = append(rows, "| `"+r.name+"` | `"+sub+".<base>` | `"+r.upstream+"` |")
		names = append(names, strings.ToUpper(r.name))
		subs = append(subs, sub)
	}
	var got []string
	for _, cells := range markdownTable(t, rel, readme, "| route | access domain (default) | upstream |") {
		got = append(got, "| "+strings.Join(cells[:min(3, len(cells))], " | ")+" |")
	}
	checkSet(t, rel+"'s route table (route, access domain, upstream)", got, rows)
	checkSet(t, rel+"'s \"`<NAME>` is one of\" list", readmeVars(t).routeNames, names)

	row := regexp.MustCompile("(?m)^\\| `RELAY_BASE_DOMAIN` \\|.*$").FindString(readme)
	got = nil
	for _, m := range regexp.MustCompile("`([a-z0-9-]+)\\.`").FindAllStringSubmatch(row, -1) {
		got = append(got, m[1])
	}
	checkSet(t, rel+"'s RELAY_BASE_DOMAIN row (subdomains)", got, subs)
}

// TestReadmeServeOnlyExample runs the README's "serve only Docker Hub and
// registry.k8s.io" command line: it must switch off every other route.
func TestReadmeServeOnlyExample(t *testing.T) {
	readme := string(readRepoFile(t, "README.md"))
	_, example, ok := strings.Cut(readme, "Examples: serve only Docker Hub and registry.k8s.io")
	if !ok {
		t.Fatal("README.md: the serve-only example is gone; update this test")
	}
	_, example, _ = strings.Cut(example, "```sh\n")
	example, _, _ = strings.Cut(example, "```")
	env := map[string]string{}
	for _, f := range strings.Fields(strings.ReplaceAll(example, "\\\n", " ")) {
		if k, v, ok := strings.Cut(f, "="); ok {
			env[k] = v
		}
	}
	env["MIRROR_ENABLED"] = "false" // the example is about routes
	for _, r := range startRelay(t, env).servedRoutes(t) {
		if r.name != "dockerhub" && r.name != "k8s" {
			t.Errorf("README.md's serve-only example leaves %s on: add %s_ENABLED=false", r.name, strings.ToUpper(r.name))
		}
	}
}

// TestDeploymentDocRoutes: the access-domain table of docs/deployment.md
// is every host the relay answers under example.com, each route's row
// naming its upstream.
func TestDeploymentDocRoutes(t *testing.T) {
	const rel = "docs/deployment.md"
	rows := markdownTable(t, rel, string(readRepoFile(t, rel)), "| access domain | serves |")
	serves := map[string]string{}
	var got []string
	for _, cells := range rows {
		host := unquote(cells[0])
		got = append(got, host)
		serves[host] = strings.Join(cells[1:], "|")
	}
	checkSet(t, rel+"'s access-domain table", got, servedHosts(t, readmeVars(t), map[string]string{"RELAY_BASE_DOMAIN": "example.com"}))
	for _, r := range exampleRoutes(t) {
		if s, ok := serves[r.host]; ok && !strings.Contains(s, "`"+r.upstream+"`") {
			t.Errorf("%s: the row of %s says it serves %q, want the upstream `%s`", rel, r.host, s, r.upstream)
		}
	}
}
