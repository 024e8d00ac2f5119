//go:build load

// Package loadtest drives the relay binary with many concurrent pulls on
// loopback and reports its memory (docs/load.md). It runs only with
// -tags load: `go test -tags load -count=1 -v ./internal/loadtest/`.
package loadtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// upstream serves one blob to every blob request, released only once
// `streams` requests are waiting, so that they really are concurrent, and
// a manifest to HEADs.
type upstream struct {
	blob    []byte
	digest  string
	streams int
	arrived atomic.Int32
	release chan struct{}
	once    sync.Once
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.Contains(r.URL.Path, "/blobs/"):
		if int(u.arrived.Add(1)) >= u.streams {
			u.once.Do(func() { close(u.release) })
		}
		select {
		case <-u.release:
		case <-time.After(60 * time.Second):
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(u.blob)))
		w.Header().Set("Docker-Content-Digest", u.digest)
		_, _ = w.Write(u.blob)
	case strings.Contains(r.URL.Path, "/manifests/"):
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Length", "512")
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("b", 64))
		if r.Method == http.MethodGet {
			_, _ = w.Write(make([]byte, 512))
		}
	default:
		w.WriteHeader(http.StatusOK)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func raiseFileLimit(t *testing.T) uint64 {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	return lim.Cur
}

// procStatus reads a "VmRSS:  1234 kB" style field of /proc/<pid>/status.
func procStatus(pid int, field string) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// startRelay builds cmd/registry-relay and runs it against upstream.
func startRelay(t *testing.T, upstreamURL string) (*exec.Cmd, string) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "registry-relay")
	build := exec.Command("go", "build", "-o", bin, "./cmd/registry-relay")
	build.Dir = "../.."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	addr, admin := freeAddr(t), freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"RELAY_LISTEN="+addr, "RELAY_ADMIN_LISTEN="+admin, "RELAY_BASE_DOMAIN=test",
		"DOCKERHUB_UPSTREAM="+upstreamURL, "RELAY_LOG_LEVEL=error", "RELAY_SHUTDOWN_DELAY=0s")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; {
		resp, err := http.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cmd, addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("relay never became ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	streams, blobMiB, heads, conc := envInt("LOAD_STREAMS", 1000), envInt("LOAD_BLOB_MIB", 4), envInt("LOAD_HEADS", 10000), envInt("LOAD_CONCURRENCY", 64)
	nofile := raiseFileLimit(t)
	blob := make([]byte, blobMiB<<20)
	for i := range blob {
		blob[i] = byte(i*7 + i>>11)
	}
	sum := sha256.Sum256(blob)
	up := &upstream{blob: blob, digest: "sha256:" + hex.EncodeToString(sum[:]), streams: streams, release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upSrv := &http.Server{Handler: up}
	go func() { _ = upSrv.Serve(ln) }()
	defer upSrv.Close()

	cmd, addr := startRelay(t, "http://"+ln.Addr().String())
	pid := cmd.Process.Pid
	idleRSS := procStatus(pid, "VmRSS")
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams, DisableCompression: true}}
	defer client.CloseIdleConnections()

	// Phase 1: concurrent blob streams.
	var peakRSS atomic.Int64
	stopSampling := make(chan struct{})
	go func() {
		for {
			if rss := procStatus(pid, "VmRSS"); rss > peakRSS.Load() {
				peakRSS.Store(rss)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	start := time.Now()
	errs := make(chan error, streams)
	for range streams {
		go func() { errs <- pullBlob(client, addr, up.digest, blob) }()
	}
	var failed []error
	for range streams {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	blobTime := time.Since(start)
	close(stopSampling)
	hwm := procStatus(pid, "VmHWM")
	if len(failed) > 0 {
		t.Errorf("%d of %d blob streams failed, first: %v", len(failed), streams, failed[0])
	}
	total := float64(streams) * float64(len(blob))
	t.Logf("RLIMIT_NOFILE %d; relay RSS idle %.1f MiB", nofile, mib(idleRSS))
	t.Logf("%d concurrent blob streams of %d MiB: %s, %.0f MiB/s through the relay, 0 errors: %v",
		streams, blobMiB, blobTime.Round(time.Millisecond), total/blobTime.Seconds()/(1<<20), len(failed) == 0)
	t.Logf("relay peak RSS (VmHWM) %.1f MiB, sampled peak VmRSS %.1f MiB, (peak-idle)/stream %.1f KiB",
		mib(hwm), mib(peakRSS.Load()), float64(hwm-idleRSS)/float64(streams)/1024)
	// Memory must grow with transfers, not bytes: 256 MiB is the budget
	// the deployment's limit and docs/benchmarks.md hold the relay to.
	if limit := 256.0 * float64(streams) / 1000; mib(hwm) > limit {
		t.Errorf("relay peak RSS %.1f MiB for %d streams, over the %.0f MiB budget", mib(hwm), streams, limit)
	}

	// Phase 2: manifest HEADs at fixed concurrency.
	lat, herrs := headManifests(client, addr, heads, conc)
	if herrs > 0 {
		t.Errorf("%d of %d manifest HEADs failed", herrs, heads)
	}
	t.Logf("%d manifest HEADs at concurrency %d: %d errors, %.0f req/s, p50 %s, p99 %s, max %s",
		heads, conc, herrs, float64(heads)/lat.total.Seconds(), lat.p(50), lat.p(99), lat.p(100))
	t.Logf("relay VmHWM after both phases %.1f MiB", mib(procStatus(pid, "VmHWM")))

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("relay exit after SIGTERM: %v", err)
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

// pullBlob reads one blob through the relay and checks every byte.
func pullBlob(client *http.Client, addr, digest string, want []byte) error {
	req, _ := http.NewRequest("GET", "http://"+addr+"/v2/load/blobs/"+digest, nil)
	req.Host = "dhcr.test"
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return err
	}
	if n != int64(len(want)) || "sha256:"+hex.EncodeToString(h.Sum(nil)) != digest {
		return errors.New("blob bytes differ")
	}
	return nil
}

type latencies struct {
	d     []time.Duration
	total time.Duration
}

func (l latencies) p(q int) time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	i := min(len(l.d)-1, len(l.d)*q/100)
	return l.d[i].Round(10 * time.Microsecond)
}

func headManifests(client *http.Client, addr string, n, conc int) (latencies, int) {
	var (
		next   atomic.Int64
		errs   atomic.Int64
		mu     sync.Mutex
		all    = make([]time.Duration, 0, n)
		wg     sync.WaitGroup
		start  = time.Now()
		ctx    = context.Background()
		target = "http://" + addr + "/v2/load/manifests/latest"
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, n/conc+1)
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequestWithContext(ctx, http.MethodHead, target, nil)
				req.Host = "dhcr.test"
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") == "" {
					errs.Add(1)
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			all = append(all, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	slices.Sort(all)
	return latencies{d: all, total: time.Since(start)}, int(errs.Load())
}
