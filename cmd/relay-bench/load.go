package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// newClient is a keep-alive client for up to conns concurrent requests per
// target. It dials every name under baseDomain as 127.0.0.1, never uses an
// environment proxy, never decompresses (sizes and digests stay exact) and
// never follows redirects.
func newClient(conns int) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && strings.HasSuffix(host, "."+baseDomain) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dialer.DialContext(ctx, network, addr)
		},
		DisableCompression:    true,
		MaxIdleConns:          4 * conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		ReadBufferSize:        64 << 10,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func newRequest(ctx context.Context, method, url, host string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	if host != "" {
		req.Host = host
	}
	return req, nil
}

// readBufSize is large so that the client reads straight from the socket
// (bufio passes big reads through) instead of io.Discard's 8 KiB chunks.
const readBufSize = 1 << 20

var readBufs = sync.Pool{New: func() any { b := make([]byte, readBufSize); return &b }}

// getBlob downloads a blob, discarding the bytes but checking the length,
// and the sha256 too when verify is set.
func getBlob(ctx context.Context, c *http.Client, t *target, repo string, b blob, verify bool) error {
	req, err := newRequest(ctx, http.MethodGet, t.blobURL(repo, b.digest), t.host)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET blob via %s: %s", t.name, resp.Status)
	}
	var h hash.Hash
	if verify {
		h = sha256.New()
	}
	buf := readBufs.Get().(*[]byte)
	defer readBufs.Put(buf)
	var n int64
	for {
		k, err := resp.Body.Read(*buf)
		n += int64(k)
		if h != nil {
			h.Write((*buf)[:k])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("GET blob via %s after %d bytes: %w", t.name, n, err)
		}
	}
	if n != b.size {
		return fmt.Errorf("GET blob via %s: %d bytes, want %d", t.name, n, b.size)
	}
	if h != nil && "sha256:"+hex.EncodeToString(h.Sum(nil)) != b.digest {
		return fmt.Errorf("GET blob via %s: digest mismatch", t.name)
	}
	return nil
}

// throughput is one blob measurement: MB/s over all clients, and the
// proxy's CPU seconds per GiB moved (0 for direct).
type throughput struct {
	mbps, cpuPerGiB float64
}

// blobThroughput has clients download the blob at once, each again and
// again until minDur has passed (at most maxRounds times), and returns the
// aggregate rate from the first request to the last byte.
func blobThroughput(ctx context.Context, c *http.Client, t *target, repo string, b blob, clients int, minDur time.Duration) (throughput, error) {
	ctx, cancel := context.WithTimeout(ctx, minDur+2*time.Minute)
	defer cancel()
	cpu0 := targetCPU(t)
	start := time.Now()
	end := start.Add(minDur)
	errs := make([]error, clients)
	var done atomic.Int64
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			for n := 0; n < maxRounds && (n == 0 || time.Now().Before(end)); n++ {
				if errs[i] = getBlob(ctx, c, t, repo, b, false); errs[i] != nil {
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if err := firstCause(errs); err != nil {
		return throughput{}, err
	}
	bytes := float64(b.size) * float64(done.Load())
	res := throughput{mbps: bytes / elapsed / 1e6}
	if t.proc != nil {
		res.cpuPerGiB = (targetCPU(t) - cpu0) / (bytes / (1 << 30))
	}
	return res, nil
}

// maxRounds bounds the downloads per client in one measurement.
const maxRounds = 50

func targetCPU(t *target) float64 {
	if t.proc == nil {
		return 0
	}
	return groupCPU(t.proc.pid())
}

// manifestAccept is what docker pull sends when resolving a tag.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// getManifest GETs the small manifest by tag.
func getManifest(ctx context.Context, c *http.Client, t *target) error {
	return requestManifest(ctx, c, t, http.MethodGet)
}

// requestManifest sends one GET or HEAD for the small manifest by tag.
func requestManifest(ctx context.Context, c *http.Client, t *target, method string) error {
	req, err := newRequest(ctx, method, t.manifestURL(smallRepo, smallTag), t.host)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", manifestAccept)
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer drain(resp)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s manifest via %s: %s", method, t.name, resp.Status)
	}
	return nil
}

// latency is one run of concurrent requests: every duration, and the rate.
type latency struct {
	durations []time.Duration // sorted
	perSecond float64
}

// headLatency sends manifest HEADs by tag from conc workers for dur.
func headLatency(ctx context.Context, c *http.Client, t *target, conc int, dur time.Duration) (latency, error) {
	return loop(ctx, conc, dur, func(ctx context.Context) error {
		return requestManifest(ctx, c, t, http.MethodHead)
	})
}

// loop runs op from conc workers until dur has passed (bounded, whatever
// op does) and collects each call's duration; the first error ends it.
func loop(ctx context.Context, conc int, dur time.Duration, op func(context.Context) error) (latency, error) {
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second)
	defer cancel()
	per := make([][]time.Duration, conc)
	errs := make([]error, conc)
	start := time.Now()
	end := start.Add(dur)
	var wg sync.WaitGroup
	for w := range conc {
		wg.Go(func() {
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				if err := op(ctx); err != nil {
					errs[w] = err
					cancel()
					return
				}
				per[w] = append(per[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	if err := firstCause(errs); err != nil {
		return latency{}, err
	}
	all := slices.Concat(per...)
	slices.Sort(all)
	return latency{durations: all, perSecond: float64(len(all)) / time.Since(start).Seconds()}, nil
}

// firstCause picks the error that ended a run rather than the
// cancellations it caused in the other workers.
func firstCause(errs []error) error {
	var canceled error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled):
			canceled = err
		default:
			return err
		}
	}
	return canceled
}
