package main

import (
	"fmt"
	"math"
	"strings"
)

// goal is one of the targets with what this run measured.
type goal struct {
	name, measured string
	ok             *bool // nil: not measured
}

func (r *runner) writeTargets(b *strings.Builder) {
	var goals []goal
	for _, c := range []struct{ metric, label string }{{"blob1", "1 client"}, {"blob8", "8 clients"}} {
		goals = append(goals, r.throughputGoals(c.metric, c.label)...)
	}
	for _, c := range []struct{ metric, label string }{{"head1", "concurrency 1"}, {"head64", "concurrency 64"}} {
		added := summarize(paired(r.res.get(c.metric+".p99", "relay"), r.res.get(c.metric+".p99", "direct"), diff))
		goals = append(goals, check("added p99 manifest HEAD latency ≤ 1 ms, "+c.label,
			fmt.Sprintf("%+.3f ms", added.median), added.n > 0, added.median <= 1))
	}
	if r.mem != nil {
		goals = append(goals, check(fmt.Sprintf("relay memory ≤ 256 MiB during %d streams", r.cfg.streams),
			"VmHWM "+mib(r.mem.hwmKiB), r.memErr == nil, r.mem.hwmKiB <= 256<<10))
	} else {
		goals = append(goals, goal{name: "relay memory ≤ 256 MiB", measured: fmt.Sprintf("not measured: %v", r.memErr)})
	}
	goals = append(goals, r.cacheGoals()...)
	rows := make([][]string, len(goals))
	for i, g := range goals {
		verdict := "not available"
		if g.ok != nil {
			verdict = map[bool]string{true: "met", false: "**missed**"}[*g.ok]
		}
		rows[i] = []string{g.name, g.measured, verdict}
	}
	b.WriteString("\n## Targets\n")
	table(b, []string{"target", "measured (median)", "verdict"}, rows)
}

// throughputGoals: the relay keeps 95 % of direct throughput and does at
// least as well as nginx, relative to direct.
func (r *runner) throughputGoals(metric, label string) []goal {
	relay := summarize(paired(r.res.get(metric, "relay"), r.res.get(metric, "direct"), ratio))
	nginx := summarize(paired(r.res.get(metric, "nginx"), r.res.get(metric, "direct"), ratio))
	return []goal{
		check("blob throughput ≥ 0.95 × direct, "+label, fmt.Sprintf("%.3f × direct", relay.median),
			relay.n > 0, relay.median >= 0.95),
		check("blob throughput ratio ≥ nginx's, "+label, fmt.Sprintf("relay %.3f, nginx %.3f", relay.median, nginx.median),
			relay.n > 0 && nginx.n > 0, relay.median >= nginx.median),
	}
}

func (r *runner) cacheGoals() []goal {
	if r.cache == nil {
		return []goal{
			{name: fmt.Sprintf("exactly 1 upstream fetch for %d concurrent cold pulls", r.cfg.pulls), measured: "relay has no cache"},
			{name: "cached blob throughput ≥ 0.9 × nginx static", measured: "relay has no cache"},
		}
	}
	var goals []goal
	if r.cold != nil {
		goals = append(goals, check(fmt.Sprintf("exactly 1 upstream fetch for %d concurrent cold pulls", r.cfg.pulls),
			fmt.Sprint(*r.cold), r.coldErr == nil, *r.cold == 1))
	}
	for _, c := range []struct{ metric, label string }{{"blob1", "1 client"}, {"blob8", "8 clients"}} {
		s := summarize(paired(r.res.get(c.metric, r.cache.name), r.res.get(c.metric, "nginx static"), ratio))
		goals = append(goals, check("cached blob throughput ≥ 0.9 × nginx static, "+c.label,
			fmt.Sprintf("%.3f × nginx static", s.median), s.n > 0 && !math.IsNaN(s.median), s.median >= 0.9))
	}
	return goals
}

// check is a goal whose verdict is ok, when measured is true.
func check(name, measured string, wasMeasured, ok bool) goal {
	g := goal{name: name, measured: measured}
	if wasMeasured {
		g.ok = &ok
	} else {
		g.measured = "not measured"
	}
	return g
}
