// Command relay-bench (`make bench`) measures registry-relay next to the
// registry it relays and next to nginx and Caddy proxying the same
// registry: blob throughput, manifest HEAD latency, the token flow, the
// relay's memory under 1,000 open blob streams and, once the relay has a
// blob cache, its upstream fetches and cached throughput. Every process
// runs on loopback and is stopped at the end; results are printed and
// written as Markdown (docs/benchmarks.md). It is not a pass/fail test.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// config is what the flags set.
type config struct {
	bin, out           string
	reps               int
	dur                time.Duration // least length of each throughput and latency measurement
	largeMiB, smallMiB int64         // the throughput blob and the streamed one
	streams, pulls     int
	hold               time.Duration // how long all streams stay open
	budget             time.Duration // the whole run, start-up included
	nice               int           // scheduling niceness of the benchmark and its servers
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "bin", "directory holding the registry-relay and registry binaries")
	flag.StringVar(&cfg.out, "out", "docs/benchmarks.md", "Markdown report to write (\"\" to only print)")
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions of each throughput and latency measurement")
	flag.DurationVar(&cfg.dur, "dur", 2*time.Second, "length of each throughput and latency measurement")
	flag.Int64Var(&cfg.largeMiB, "large-mib", 512, "size of the throughput blob")
	flag.Int64Var(&cfg.smallMiB, "stream-mib", 64, "size of the blob streamed by the memory and cold-pull runs")
	flag.IntVar(&cfg.streams, "streams", 1000, "concurrent blob streams in the memory run")
	flag.IntVar(&cfg.pulls, "pulls", 50, "concurrent cold pulls in the cache run")
	flag.DurationVar(&cfg.hold, "hold", 5*time.Second, "how long all streams of the memory run stay open")
	flag.DurationVar(&cfg.budget, "budget", 14*time.Minute, "time limit of the whole run; later measurements are skipped")
	flag.IntVar(&cfg.nice, "nice", 0, "run the benchmark and every server at this niceness (-10 as root keeps other load out of the figures)")
	flag.Parse()
	log.SetFlags(log.Ltime)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Printf("bench: %v", err)
		os.Exit(1)
	}
}

// run starts everything, measures, and reports.
func run(ctx context.Context, cfg config) error {
	r := &runner{cfg: cfg, res: store{}, started: time.Now(), client: newClient(128), meter: startCPUMeter()}
	defer r.client.CloseIdleConnections()
	interrupted := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.budget)
	defer cancel()
	if cfg.nice != 0 {
		if err := setNice(cfg.nice); err != nil {
			r.note("niceness %d not set: %v", cfg.nice, err)
		}
	}
	if n, err := raiseFileLimit(); err != nil || n < uint64(3*cfg.streams) {
		r.note("RLIMIT_NOFILE is %d (%v); the memory run may fail to open %d streams", n, err, cfg.streams)
	}
	dir, err := os.MkdirTemp("", "relay-bench-")
	if err != nil {
		return err
	}
	r.st = &stack{dir: dir, bin: cfg.bin}
	defer r.st.close()
	if err := r.setUp(ctx); err != nil {
		if r.issuer != nil {
			r.issuer.Close()
		}
		return err
	}
	r.measureAll(ctx)
	if interrupted.Err() != nil {
		return errors.New("interrupted: no report written")
	}
	r.issuer.Close()
	r.st.close() // before the report: it counts the CPU of the stopped children
	r.otherCPU, r.wall = r.meter.others()
	return r.report()
}

// measureAll runs every phase that the time budget leaves room for.
func (r *runner) measureAll(ctx context.Context) {
	log.Printf("warm-up: every target serves the %d MiB blob, digest verified", r.cfg.largeMiB)
	r.warmUp(ctx)
	for rep := range r.cfg.reps {
		if ctx.Err() != nil {
			break
		}
		log.Printf("repetition %d/%d", rep+1, r.cfg.reps)
		r.repetition(ctx, rep)
		r.repsDone = rep + 1
	}
	r.memErr, r.coldErr = errSkipped, errSkipped
	if ctx.Err() == nil {
		r.memoryRun(ctx)
	}
	if ctx.Err() == nil && r.cache != nil {
		r.coldRun(ctx)
	}
	if ctx.Err() != nil {
		r.note("stopped after %d of %d repetitions (%v, budget %s): later measurements are missing",
			r.repsDone, r.cfg.reps, context.Cause(ctx), r.cfg.budget)
	}
}

// errSkipped explains a phase that the time budget left no room for.
var errSkipped = errors.New("skipped: the time budget ran out")

// runner is one benchmark run: its processes, targets and results.
type runner struct {
	cfg     config
	st      *stack
	client  *http.Client
	started time.Time
	meter   cpuMeter
	// CPU seconds other processes used during the run, and its wall time.
	otherCPU, wall float64

	issuer    *relaytest.TokenIssuer
	seed      seed
	upstream  string // the anonymous registry's URL
	tokenUp   string // the token-auth registry's URL
	relay     *target
	cache     *target   // the relay with its blob cache, nil when it has none
	targets   []*target // measured in every phase
	blobOnly  []*target // measured for blob throughput only (nginx static)
	cacheNote string    // why there is no cache target

	res      store
	repsDone int
	mem      *memoryResult
	memErr   error
	cold     *int64
	coldErr  error
	notes    []string
}

func (r *runner) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	log.Print(msg)
	r.notes = append(r.notes, msg)
}
