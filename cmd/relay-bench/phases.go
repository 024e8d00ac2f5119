package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/url"
	"time"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// setUp starts both registries, seeds them, and starts every target.
func (r *runner) setUp(ctx context.Context) error {
	issuer, err := relaytest.StartTokenIssuer(relaytest.IssuerOptions{}, "")
	if err != nil {
		return err
	}
	r.issuer = issuer
	r.st.authHost = issuer.Host
	upstream, root, err := r.st.startRegistry(ctx, "registry", nil)
	if err != nil {
		return err
	}
	if r.tokenUp, _, err = r.st.startRegistry(ctx, "registry-token", issuer); err != nil {
		return err
	}
	r.upstream = upstream
	log.Printf("seeding %d MiB and %d MiB blobs and small manifests", r.cfg.largeMiB, r.cfg.smallMiB)
	if r.seed, err = seedRegistry(ctx, upstream, r.cfg.largeMiB<<20, r.cfg.smallMiB<<20); err != nil {
		return err
	}
	if err := pushSmall(ctx, relaytest.External(r.tokenUp, issuer)); err != nil {
		return fmt.Errorf("seeding the token registry: %w", err)
	}
	r.targets = append(r.targets, &target{name: "direct", base: upstream})
	if err := r.startRelays(ctx); err != nil {
		return err
	}
	return r.startProxies(ctx, upstream, root)
}

// startRelays starts each relay variant that the binary supports.
func (r *runner) startRelays(ctx context.Context) error {
	for _, v := range relayVariants {
		t, reason := r.st.probeVariant(ctx, r.client, v, r.upstream, r.tokenUp, r.seed.stream)
		if reason != "" {
			if v.needsMetric == "" {
				return fmt.Errorf("%s: %s", v.name, reason)
			}
			r.note("%s: not available: %s", v.name, reason)
			r.cacheNote = reason
			continue
		}
		r.targets = append(r.targets, t)
		switch {
		case r.relay == nil && v.needsMetric == "":
			r.relay = t // the plain relay: the token flow and the targets use it
		case v.env["RELAY_CACHE_DIR"] != "":
			r.cache = t
		}
	}
	return nil
}

// startProxies starts nginx and Caddy in front of the anonymous registry,
// skipping (with a note) whichever is not installed.
func (r *runner) startProxies(ctx context.Context, upstream, root string) error {
	host := mustHost(upstream)
	if bin, ok := lookTool("nginx"); ok {
		t, err := r.st.startNginx(ctx, bin, host, root)
		if err != nil {
			return err
		}
		r.targets = append(r.targets, t)
		if r.cache != nil {
			r.blobOnly = append(r.blobOnly, staticTarget(t))
		}
	} else {
		r.note("nginx is not installed: its rows are skipped (make bench installs it when run as root)")
	}
	if bin, ok := lookTool("caddy"); ok {
		t, err := r.st.startCaddy(ctx, bin, host)
		if err != nil {
			return err
		}
		r.targets = append(r.targets, t)
	} else {
		r.note("caddy is not installed: its rows are skipped (make bench installs it when run as root)")
	}
	return nil
}

func mustHost(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err) // built by this program from a listener address
	}
	return u.Host
}

// warmUp pulls through every target once, as a client would (manifest
// GET, then the large blob, its digest verified): it checks that every
// path is byte-exact and fills the page cache and, for a caching relay,
// the cache. It is not timed.
func (r *runner) warmUp(ctx context.Context) {
	for _, t := range r.blobTargets(0) {
		if t.blobPath == nil {
			if err := getManifest(ctx, r.client, t); err != nil {
				r.note("warm-up via %s: %v", t.name, err)
			}
		}
		if err := getBlob(ctx, r.client, t, bigRepo, r.seed.large, true); err != nil {
			r.note("warm-up via %s: %v", t.name, err)
		}
	}
}

// blobTargets is every target that serves blobs, in the rep's order.
func (r *runner) blobTargets(rep int) []*target {
	return rotate(append(append([]*target{}, r.targets...), r.blobOnly...), rep)
}

// rotate changes who goes first each repetition, so that no target always
// runs right after the same neighbour (page cache, CPU frequency, GC).
func rotate(ts []*target, rep int) []*target {
	if len(ts) == 0 {
		return ts
	}
	k := rep % len(ts)
	return append(append([]*target{}, ts[k:]...), ts[:k]...)
}

// repetition measures every scenario once per target, interleaved.
func (r *runner) repetition(ctx context.Context, rep int) {
	for _, clients := range []int{1, 8} {
		for _, t := range r.blobTargets(rep) {
			r.measureBlob(ctx, t, clients)
		}
	}
	for _, conc := range []int{1, 64} {
		for _, t := range rotate(r.targets, rep) {
			r.measureHead(ctx, t, conc)
		}
	}
	flows := []struct{ name, base string }{
		{"direct", r.tokenUp},
		{"relay", fmt.Sprintf("http://%s:%s", hubHost, mustPort(r.relay.base))},
	}
	for i := range flows {
		f := flows[(i+rep)%len(flows)]
		lat, err := tokenLatency(ctx, r.client, f.base, r.cfg.dur)
		if !r.failed(err, "token flow via %s", f.name) {
			r.addLatency("token", f.name, lat)
		}
	}
}

func (r *runner) measureBlob(ctx context.Context, t *target, clients int) {
	tp, err := blobThroughput(ctx, r.client, t, bigRepo, r.seed.large, clients, r.cfg.dur)
	if r.failed(err, "blob GET, %d clients, via %s", clients, t.name) {
		return
	}
	r.res.add(fmt.Sprint("blob", clients), t.name, tp.mbps)
	r.res.add(fmt.Sprint("cpu", clients), t.name, tp.cpuPerGiB)
}

func (r *runner) measureHead(ctx context.Context, t *target, conc int) {
	// A pull just before: a caching relay answers tags it resolved within
	// RELAY_CACHE_TAG_TTL itself, and should be measured doing so.
	if err := getManifest(ctx, r.client, t); r.failed(err, "manifest GET via %s", t.name) {
		return
	}
	cpu0 := targetCPU(t)
	lat, err := headLatency(ctx, r.client, t, conc, r.cfg.dur)
	if r.failed(err, "manifest HEAD, concurrency %d, via %s", conc, t.name) {
		return
	}
	metric := fmt.Sprint("head", conc)
	r.addLatency(metric, t.name, lat)
	if n := len(lat.durations); t.proc != nil && n > 0 {
		r.res.add(metric+".cpu", t.name, (targetCPU(t)-cpu0)/float64(n)*1e6)
	}
}

func (r *runner) addLatency(metric, target string, lat latency) {
	r.res.add(metric+".p50", target, percentile(lat.durations, 50))
	r.res.add(metric+".p99", target, percentile(lat.durations, 99))
	r.res.add(metric+".rps", target, lat.perSecond)
}

// failed notes err (unless the run is being stopped) and reports whether
// there was one.
func (r *runner) failed(err error, format string, args ...any) bool {
	if err == nil {
		return false
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		r.note(format+": %v", append(args, err)...)
	}
	return true
}

func mustPort(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	return u.Port()
}

// memoryRun measures a relay started for this alone, so that its VmHWM
// covers only the streams.
func (r *runner) memoryRun(ctx context.Context) {
	log.Printf("memory: %d concurrent streams of the %d MiB blob through a fresh relay", r.cfg.streams, r.cfg.smallMiB)
	t, err := r.st.startRelay(ctx, "relay-memory", r.upstream, r.tokenUp, nil)
	if err != nil {
		r.memErr = err
		return
	}
	defer t.proc.stop()
	// One request first, so the baseline includes a warm connection pool.
	if err := getBlob(ctx, r.client, t, bigRepo, r.seed.stream, false); err != nil {
		r.memErr = err
		return
	}
	res, err := relayMemory(ctx, t, r.seed.stream, r.cfg.streams, r.cfg.hold)
	r.mem, r.memErr = &res, err
}

// coldRun counts the registry's blob GETs while pulls clients fetch one
// uncached blob through a fresh caching relay at once.
func (r *runner) coldRun(ctx context.Context) {
	log.Printf("cache: %d concurrent cold pulls of one blob", r.cfg.pulls)
	cp, err := startCountingProxy(r.upstream)
	if err != nil {
		r.coldErr = err
		return
	}
	defer cp.close()
	var env map[string]string
	for _, v := range relayVariants {
		if v.env["RELAY_CACHE_DIR"] != "" {
			env = v.env
		}
	}
	t, err := r.st.startRelay(ctx, "relay-cold", cp.url, r.tokenUp, env)
	if err != nil {
		r.coldErr = err
		return
	}
	defer t.proc.stop()
	start := time.Now()
	n, err := coldPulls(ctx, t, cp, r.seed.stream, r.cfg.pulls)
	log.Printf("cache: %d upstream blob GETs in %s", n, time.Since(start).Round(time.Millisecond))
	r.cold, r.coldErr = &n, err
}
