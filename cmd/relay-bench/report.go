package main

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

// report prints the Markdown report and writes it to cfg.out.
func (r *runner) report() error {
	var b strings.Builder
	r.writeHeader(&b)
	r.writeThroughput(&b)
	r.writeHead(&b)
	r.writeToken(&b)
	r.writeMemory(&b)
	r.writeCache(&b)
	r.writeTargets(&b)
	if len(r.notes) > 0 {
		b.WriteString("\n## Notes from this run\n\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	fmt.Print("\n" + b.String())
	if r.cfg.out == "" {
		return nil
	}
	// The analysis below the marker is written by people; keep it.
	if old, err := os.ReadFile(r.cfg.out); err == nil {
		if i := strings.Index(string(old), keepMarker); i >= 0 {
			b.WriteString("\n" + string(old[i:]))
		}
	}
	return os.WriteFile(r.cfg.out, []byte(b.String()), 0o644)
}

// keepMarker starts the hand-written part of the report, which a new run
// carries over unchanged.
const keepMarker = "<!-- make bench keeps everything below this line -->"

// busyShare is the fraction of the machine's CPU that other processes used.
func (r *runner) busyShare() float64 {
	if r.wall == 0 {
		return 0
	}
	return r.otherCPU / r.wall / float64(runtime.NumCPU())
}

func table(b *strings.Builder, header []string, rows [][]string) {
	fmt.Fprintf(b, "\n| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat("---|", len(header)))
	for _, row := range rows {
		fmt.Fprintf(b, "| %s |\n", strings.Join(row, " | "))
	}
}

func (r *runner) writeHeader(b *strings.Builder) {
	fmt.Fprintf(b, "# Benchmarks\n\nWritten by `make bench` (`cmd/relay-bench`) on %s; the run took %s. "+
		"Not part of `make test` or CI: the figures depend on the machine, so compare rows of one run, not runs.\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), time.Since(r.started).Round(time.Second))
	b.WriteString("\n## Machine\n")
	rows := append(machineRows(r.cfg.bin),
		[]string{"other processes during the run",
			fmt.Sprintf("%.0f CPU-seconds in %.0f s (%.0f %% of the machine)", r.otherCPU, r.wall, 100*r.busyShare())},
		[]string{"benchmark niceness", fmt.Sprint(r.cfg.nice)})
	table(b, []string{"what", "value"}, rows)
	if r.busyShare() > 0.05 {
		b.WriteString("\n**The machine was not idle during this run**: other processes competed for its cores, " +
			"so the spread is wider than on an idle machine.\n")
	}
	fmt.Fprintf(b, `
## Method

Everything runs on 127.0.0.1 on the machine above; load generator and servers share its cores.
The upstream is the distribution `+"`registry`"+` binary (filesystem storage in a temporary directory, no auth),
seeded with a %d MiB and a %d MiB random (incompressible) layer and small manifests. Targets:

- **direct**: the registry itself.
- **relay**: the registry-relay binary, k8s route (no `+"`library/`"+` rewriting), `+"`RELAY_LOG_LEVEL=warn`"+`.
- **nginx**: `+"`proxy_pass`"+` with `+"`proxy_buffering off`"+`, `+"`proxy_request_buffering off`"+`, HTTP/1.1 upstream keepalive,
  `+"`proxy_buffer_size 32k`"+` (the relay's buffer size; nginx's 4 KiB default halves its throughput here).
- **caddy**: `+"`reverse_proxy`"+` with `+"`flush_interval -1`"+`.

The load generator is a Go keep-alive client (compression off). Each figure is the median over %d repetitions
with [min–max]; within a repetition the targets are measured one after another, their order rotating
between repetitions, and ratios are taken per repetition before the median. Each measurement lasts
at least %s. Blob bytes are discarded after a warm-up pull that verified the sha256 through every
target; proxy CPU is user+system time of the proxy's processes per GiB sent or per request.
Manifest HEADs are by tag, right after a GET of the same manifest. The token flow uses a second
registry with token auth and an in-process issuer.
`, r.cfg.largeMiB, r.cfg.smallMiB, r.repsDone, r.cfg.dur)
}

func (r *runner) writeThroughput(b *strings.Builder) {
	fmt.Fprintf(b, "\n## Blob GET throughput (%d MiB blob, MB/s = 10^6 bytes/s)\n", r.cfg.largeMiB)
	var rows [][]string
	for _, t := range r.blobTargets(0) {
		row := []string{t.name}
		for _, c := range []string{"blob1", "blob8"} {
			row = append(row, summarize(r.res.get(c, t.name)).format(0), r.vsDirect(c, t.name))
		}
		cpu := "–"
		if t.proc != nil {
			cpu = summarize(r.res.get("cpu1", t.name)).format(2) + " / " + summarize(r.res.get("cpu8", t.name)).format(2)
		}
		rows = append(rows, append(row, cpu))
	}
	table(b, []string{"target", "1 client", "vs direct", "8 clients", "vs direct", "proxy CPU s per GiB (1 / 8 clients)"}, rows)
}

// vsDirect is the target's per-repetition ratio to direct, summarized.
func (r *runner) vsDirect(metric, name string) string {
	if name == "direct" {
		return "1"
	}
	return summarize(paired(r.res.get(metric, name), r.res.get(metric, "direct"), ratio)).format(3)
}

func (r *runner) writeHead(b *strings.Builder) {
	fmt.Fprintf(b, "\n## Manifest HEAD by tag (latency in ms)\n")
	var rows [][]string
	for _, t := range r.targets {
		row := []string{t.name}
		for _, c := range []string{"head1", "head64"} {
			row = append(row,
				summarize(r.res.get(c+".p50", t.name)).format(3),
				summarize(r.res.get(c+".p99", t.name)).format(3),
				r.addedVsDirect(c+".p99", t.name),
				summarize(r.res.get(c+".rps", t.name)).format(0))
		}
		cpu := "–"
		if t.proc != nil {
			cpu = summarize(r.res.get("head1.cpu", t.name)).format(0) + " / " + summarize(r.res.get("head64.cpu", t.name)).format(0)
		}
		rows = append(rows, append(row, cpu))
	}
	table(b, []string{"target", "c=1 p50", "c=1 p99", "c=1 p99 added", "c=1 req/s",
		"c=64 p50", "c=64 p99", "c=64 p99 added", "c=64 req/s", "proxy CPU µs per request (c=1 / c=64)"}, rows)
}

// addedVsDirect is the per-repetition difference to direct, summarized.
func (r *runner) addedVsDirect(metric, name string) string {
	if name == "direct" {
		return "–"
	}
	return summarize(paired(r.res.get(metric, name), r.res.get(metric, "direct"), diff)).format(3)
}

func (r *runner) writeToken(b *strings.Builder) {
	b.WriteString("\n## Token flow: ping → 401 → token → manifest GET, one client, nothing cached (ms)\n")
	var rows [][]string
	for _, name := range []string{"direct", "relay"} {
		label := map[string]string{"direct": "direct (registry + issuer)", "relay": "relay (dockerhub route)"}[name]
		rows = append(rows, []string{label,
			summarize(r.res.get("token.p50", name)).format(3),
			summarize(r.res.get("token.p99", name)).format(3),
			r.addedVsDirect("token.p50", name),
			summarize(r.res.get("token.rps", name)).format(0)})
	}
	table(b, []string{"path", "p50", "p99", "p50 added", "flows/s"}, rows)
}

func (r *runner) writeMemory(b *strings.Builder) {
	fmt.Fprintf(b, "\n## Relay memory, %d concurrent streams of the %d MiB blob\n\n", r.cfg.streams, r.cfg.smallMiB)
	fmt.Fprintf(b, "A relay started for this run alone; every client reads %d KiB per %s, so all streams stay open "+
		"for %s while VmRSS is sampled every 50 ms. VmHWM is the kernel's peak since the relay started.\n",
		streamChunk>>10, streamTick, r.cfg.hold)
	if r.mem == nil {
		fmt.Fprintf(b, "\nnot measured: %v\n", r.memErr)
		return
	}
	m := r.mem
	table(b, []string{"streams open at once", "failed", "VmRSS before", "peak VmRSS sampled", "VmHWM"},
		[][]string{{fmt.Sprint(m.streams), fmt.Sprint(m.failed), mib(m.baselineKiB), mib(m.peakSampleKiB), mib(m.hwmKiB)}})
	if r.memErr != nil {
		fmt.Fprintf(b, "\nerror: %v\n", r.memErr)
	}
}

func mib(kib int64) string { return fmt.Sprintf("%.1f MiB", float64(kib)/1024) }

func (r *runner) writeCache(b *strings.Builder) {
	b.WriteString("\n## Blob cache\n\n")
	if r.cache == nil {
		fmt.Fprintf(b, "Not available: %s. The cache rows (cold-pull upstream fetches, cached throughput vs nginx "+
			"serving the blob as a static file) appear once the relay has `RELAY_CACHE_DIR`.\n", r.cacheNote)
		return
	}
	b.WriteString("`relay+cache` and `nginx static` rows are in the throughput table; `relay+cache` was warm.\n")
	if r.cold == nil {
		fmt.Fprintf(b, "\nCold pulls not measured: %v\n", r.coldErr)
		return
	}
	fmt.Fprintf(b, "\n%d concurrent cold pulls of the %d MiB blob through a fresh caching relay: "+
		"**%d** blob GETs reached the registry", r.cfg.pulls, r.cfg.smallMiB, *r.cold)
	if r.coldErr != nil {
		fmt.Fprintf(b, " (errors: %v)", r.coldErr)
	}
	b.WriteString(".\n")
}
