package check

import (
	"regexp"
	"strings"
	"testing"
)

// relayVars is the README's configuration table: every variable the relay
// reads (per-route rows expanded for each <NAME>), with its default as
// written there ("unset", "built-in" or a value).
type relayVars struct {
	defaults   map[string]string
	routeNames []string // DOCKERHUB, K8S, ...
}

var (
	backticked = regexp.MustCompile("`([^`]*)`")
	nameList   = regexp.MustCompile("(?m)^`<NAME>` is one of (.*)$")
)

// readmeVars parses the table under "## Configuration" in README.md.
func readmeVars(t *testing.T) relayVars {
	t.Helper()
	readme := string(readRepoFile(t, "README.md"))
	_, section, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		t.Fatal(`README.md has no "## Configuration" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	v := relayVars{defaults: map[string]string{}}
	m := nameList.FindStringSubmatch(section)
	if m == nil {
		t.Fatal("README.md: no \"`<NAME>` is one of ...\" line under Configuration")
	}
	// The list may wrap onto the next lines, up to the closing period.
	list, _, _ := strings.Cut(section[strings.Index(section, m[0]):], ".\n")
	for _, n := range backticked.FindAllStringSubmatch(list, -1)[1:] {
		v.routeNames = append(v.routeNames, n[1])
	}
	for line := range strings.SplitSeq(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		def := strings.Trim(strings.TrimSpace(cells[2]), "`")
		for _, n := range backticked.FindAllStringSubmatch(cells[1], -1) {
			v.add(n[1], def)
		}
	}
	if len(v.defaults) == 0 || len(v.routeNames) == 0 {
		t.Fatal("README.md: configuration table not found")
	}
	return v
}

func (v relayVars) add(name, def string) {
	if !strings.Contains(name, "<NAME>") {
		v.defaults[name] = def
		return
	}
	for _, r := range v.routeNames {
		v.defaults[strings.ReplaceAll(name, "<NAME>", r)] = def
	}
}

// effective is the value the relay uses for name under env: the set value,
// else the README default.
func (v relayVars) effective(env map[string]string, name string) string {
	if s, ok := env[name]; ok {
		return s
	}
	return v.defaults[name]
}

// checkKnown fails for every name in env the relay does not read: such a
// line is a typo that silently does nothing.
func (v relayVars) checkKnown(t *testing.T, where string, env map[string]string) {
	t.Helper()
	for name := range env {
		if _, ok := v.defaults[name]; !ok {
			t.Errorf("%s sets %s, which the relay does not read (README configuration table)", where, name)
		}
	}
}

func TestReadmeTableParses(t *testing.T) {
	v := readmeVars(t) // the route names are compared with the relay's in TestReadmeRoutes
	for _, name := range []string{"RELAY_BASE_DOMAIN", "RELAY_LISTEN", "RELAY_ADMIN_LISTEN", "DOCKERHUB_ACCESS_DOMAIN", "GITLAB_ENABLED", "NO_PROXY"} {
		if _, ok := v.defaults[name]; !ok {
			t.Errorf("README table parsed without %s", name)
		}
	}
	if got := v.defaults["RELAY_ADMIN_LISTEN"]; got != ":9090" {
		t.Errorf("RELAY_ADMIN_LISTEN default parsed as %q", got)
	}
}
