//go:build e2e

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// leaf is one innermost test of the suite's result tree.
type leaf struct {
	name, status string
	errs         []string
}

type report struct {
	leaves   []leaf
	totals   map[string]int // from the "OCI Conformance Result" block
	exitCode int
	panicked bool // the suite crashed after its report (results.yaml on read-only data)
}

var (
	treeLine  = regexp.MustCompile(`^( *)(OCI Conformance Test[^:]*): (Pass|FAIL|Skip|Error|Disabled)$`)
	totalLine = regexp.MustCompile(`^  (Disabled|Skip|Pass|FAIL|Error|Total)\.*: +(\d+)$`)
)

// parseReport reads the suite's stdout: the "Test results" tree, whose
// leaves are the individual tests, and the totals.
func parseReport(path string) (*report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type node struct {
		indent int
		leaf
	}
	var nodes []node
	rep := &report{totals: map[string]int{}}
	section := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "Test results":
			section = "tree"
			continue
		case strings.HasPrefix(l, "Configuration:"):
			section = ""
		case strings.HasPrefix(l, "OCI Conformance Result:"):
			section = "totals"
			continue
		}
		switch section {
		case "tree":
			if m := treeLine.FindStringSubmatch(l); m != nil {
				nodes = append(nodes, node{len(m[1]), leaf{name: m[2], status: m[3]}})
			} else if len(nodes) > 0 && strings.TrimSpace(l) != "" {
				last := &nodes[len(nodes)-1]
				last.errs = append(last.errs, strings.TrimSpace(l))
			}
		case "totals":
			if m := totalLine.FindStringSubmatch(l); m != nil {
				var n int
				fmt.Sscan(m[2], &n)
				rep.totals[m[1]] = n
			} else if strings.TrimSpace(l) == "" {
				section = ""
			}
		}
	}
	for i, n := range nodes {
		if i+1 < len(nodes) && nodes[i+1].indent > n.indent {
			continue
		}
		rep.leaves = append(rep.leaves, n.leaf)
	}
	if len(rep.leaves) == 0 {
		return nil, fmt.Errorf("%s: no test results found", path)
	}
	return rep, sc.Err()
}

// workflow sorts a leaf into the suite's old workflow names.
func workflow(name string) string {
	parts := strings.Split(name, "/")
	last, parent := parts[len(parts)-1], ""
	if len(parts) > 2 {
		parent = parts[len(parts)-2]
	}
	switch {
	case last == "ping":
		return "ping"
	case last == "tag list" || last == "tag-list" || last == "referrers":
		return "discovery"
	case strings.HasSuffix(last, "-delete"):
		return "management"
	case last == "blob-get", last == "blob-head", strings.HasPrefix(last, "manifest-head-by-"),
		strings.HasPrefix(last, "range "), last == "get-missing", last == "manifest-get",
		parent == "missing-manifest",
		parent == "pull" && strings.HasPrefix(last, "manifest-by-"):
		return "pull"
	}
	return "push"
}

var workflows = []string{"ping", "pull", "discovery", "push", "management"}

type counts struct{ pass, fail, skip, disabled int }

func (c counts) String() string {
	return fmt.Sprintf("%d/%d/%d/%d", c.pass, c.fail, c.skip, c.disabled)
}

func (r *report) byWorkflow() map[string]counts {
	out := map[string]counts{}
	for _, l := range r.leaves {
		c := out[workflow(l.name)]
		switch l.status {
		case "Pass":
			c.pass++
		case "FAIL", "Error":
			c.fail++
		case "Skip":
			c.skip++
		case "Disabled":
			c.disabled++
		}
		out[workflow(l.name)] = c
	}
	return out
}

type row struct {
	auth, profile string
	direct, relay *report
}

func printTable(w io.Writer, rows []row) {
	fmt.Fprintf(w, "\ncounts are pass/fail/skip/disabled leaf tests; 'suite' is the suite's own Pass/FAIL/Skip/Disabled totals\n")
	fmt.Fprintf(w, "%-6s %-9s %-7s %-16s", "auth", "profile", "leg", "suite")
	for _, wf := range workflows {
		fmt.Fprintf(w, " %-12s", wf)
	}
	fmt.Fprintln(w)
	for _, r := range rows {
		for _, leg := range []struct {
			name string
			rep  *report
		}{{"direct", r.direct}, {"relay", r.relay}} {
			t := leg.rep.totals
			suite := fmt.Sprintf("%d/%d/%d/%d", t["Pass"], t["FAIL"]+t["Error"], t["Skip"], t["Disabled"])
			if leg.rep.panicked {
				suite += " (crash)"
			}
			fmt.Fprintf(w, "%-6s %-9s %-7s %-16s", r.auth, r.profile, leg.name, suite)
			wc := leg.rep.byWorkflow()
			for _, wf := range workflows {
				fmt.Fprintf(w, " %-12s", wc[wf])
			}
			fmt.Fprintln(w)
		}
	}
}

// printRegressions lists tests whose name passes more often directly than
// through the relay (names repeat, one per blob or manifest, so the
// comparison is by count), with the relay leg's errors for them.
func printRegressions(w io.Writer, auth, profile string, direct, relay *report) int {
	pass := func(r *report) map[string]int {
		m := map[string]int{}
		for _, l := range r.leaves {
			if l.status == "Pass" {
				m[l.name]++
			}
		}
		return m
	}
	dp, rp := pass(direct), pass(relay)
	var names []string
	for n, c := range dp {
		if rp[n] < c {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	total := 0
	for _, n := range names {
		total += dp[n] - rp[n]
		fmt.Fprintf(w, "REGRESSION %s/%s: %s passes %d× directly, %d× through the relay\n", auth, profile, n, dp[n], rp[n])
		seen := map[string]bool{}
		for _, l := range relay.leaves {
			if l.name != n || l.status == "Pass" {
				continue
			}
			for _, e := range l.errs {
				if !seen[e] {
					seen[e] = true
					fmt.Fprintf(w, "    %s\n", truncate(e, 400))
				}
			}
		}
	}
	return total
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
