//go:build e2e

// Package e2e pulls synthetic images through a built registry-relay binary
// with the clients users run (crane, regctl, skopeo, podman, containerd,
// Docker) and checks what a read-only relay must refuse. Everything runs on
// loopback: two registry binaries (one with token auth), the relay, and each
// client's daemon where it needs one. `make e2e` installs the tools first.
package e2e

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
)

var binDir = flag.String("bin", "", "directory holding registry-relay, registry, crane, regctl (make e2e sets it)")

// outcome is one row of the PASS/FAIL table printed at the end.
type outcome struct {
	client, test, result, detail string
}

var (
	outcomesMu sync.Mutex
	outcomes   []outcome
)

func record(client, test, result, detail string) {
	outcomesMu.Lock()
	defer outcomesMu.Unlock()
	outcomes = append(outcomes, outcome{client, test, result, detail})
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	printTable()
	os.Exit(code)
}

func printTable() {
	outcomesMu.Lock()
	defer outcomesMu.Unlock()
	if len(outcomes) == 0 {
		return
	}
	sort.SliceStable(outcomes, func(i, j int) bool { return outcomes[i].client < outcomes[j].client })
	counts := map[string]int{}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-12s %-62s %-6s %s\n", "CLIENT", "CASE", "RESULT", "DETAIL")
	for _, o := range outcomes {
		counts[o.result]++
		fmt.Fprintf(&b, "%-12s %-62s %-6s %s\n", o.client, o.test, o.result, o.detail)
	}
	fmt.Fprintf(&b, "e2e: %d passed, %d failed, %d skipped\n", counts["PASS"], counts["FAIL"], counts["SKIP"])
	fmt.Print(b.String())
}
