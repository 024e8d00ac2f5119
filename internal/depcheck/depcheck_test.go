package depcheck

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/registry-relay/registry-relay/"

// allowed lists, for every package of the module, the module's packages it
// may import (non-test files). A package missing here fails the test: a
// new package states its place in the graph when it is added.
var allowed = map[string][]string{
	// Leaves: each one job, nothing of ours below it.
	"internal/oci":       nil, // the OCI API at the edge: paths, errors
	"internal/netguard":  nil, // which addresses a steered request may reach
	"internal/registry":  nil, // the upstream table: plain data and pure patches
	"internal/access":    nil, // policies, limits, relay accounts
	"internal/metrics":   nil, // collectors and the admin listener
	"internal/lru":       nil, // the one bounded expiring table
	"internal/httpbody":  nil, // bounded reads and drains
	"internal/peers":     nil, // the fleet: who owns a blob, and peers' proofs
	"internal/relaytest": nil, // test servers: never linked into the binary

	"internal/cache":        {"internal/lru"},
	"internal/auth":         {"internal/httpbody", "internal/oci", "internal/registry"},
	"internal/upstreamauth": {"internal/auth", "internal/httpbody", "internal/lru", "internal/registry"},
	"internal/config":       {"internal/access", "internal/oci", "internal/registry"},
	"internal/relay": {"internal/access", "internal/auth", "internal/cache", "internal/httpbody", "internal/lru",
		"internal/metrics", "internal/netguard", "internal/oci", "internal/peers", "internal/registry", "internal/upstreamauth"},
	"internal/app": {"internal/access", "internal/cache", "internal/config", "internal/metrics", "internal/netguard",
		"internal/peers", "internal/registry", "internal/relay"},

	"cmd/registry-relay": {"internal/app", "internal/config"},
	"cmd/relay-bench":    {"internal/relaytest"},
	"examples/demo":      {"internal/app", "internal/config"},
}

// testingAllowed may import the testing package outside test files.
var testingAllowed = []string{"internal/relaytest"}

func TestPackageGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \",\"}}", module+"...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, imports, _ := strings.Cut(line, "|")
		pkg, ok := strings.CutPrefix(path, module)
		if !ok || pkg == "internal/depcheck" {
			continue
		}
		want, known := allowed[pkg]
		if !known {
			t.Errorf("%s is not in depcheck's table: say which of the module's packages it may import", pkg)
			continue
		}
		seen++
		for _, imp := range strings.Split(imports, ",") {
			if imp == "testing" && !slices.Contains(testingAllowed, pkg) {
				t.Errorf("%s imports testing outside its tests", pkg)
			}
			if dep, ours := strings.CutPrefix(imp, module); ours && !slices.Contains(want, dep) {
				t.Errorf("%s imports %s, which the layering does not allow (allowed: %v)", pkg, dep, want)
			}
		}
	}
	if seen < len(allowed) {
		t.Errorf("go list showed %d of the %d packages in the table: remove the ones that are gone", seen, len(allowed))
	}
}
