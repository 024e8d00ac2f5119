package relay_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowBlobs serves any blob slowly (1 MiB over about 5 s) and counts the
// GETs it is still sending, the transfers that somebody is paying for.
type slowBlobs struct {
	srv        *httptest.Server
	open, peak atomic.Int32
	stop       chan struct{}
}

func newSlowBlobs(t *testing.T) *slowBlobs {
	s := &slowBlobs{stop: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	t.Cleanup(func() { close(s.stop) }) // runs first: no handler outlives the test
	return s
}

func (s *slowBlobs) serve(w http.ResponseWriter, r *http.Request) {
	const size, chunk = 1 << 20, 4 << 10
	w.Header().Set("Content-Length", strconv.Itoa(size))
	if r.Method == http.MethodHead {
		return
	}
	n := s.open.Add(1)
	defer s.open.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	for off := 0; off < size; off += chunk {
		if _, err := w.Write(make([]byte, chunk)); err != nil {
			return
		}
		w.(http.Flusher).Flush()
		select {
		case <-s.stop:
			return
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// TestAbandonedFillsStopUpstreamTransfers: clients that give up on slow,
// distinct, uncached blobs leave no upstream transfer running.
func TestAbandonedFillsStopUpstreamTransfers(t *testing.T) {
	const n = 8
	up := newSlowBlobs(t)
	relay, _ := startRelay(t, cacheEnv(t, up.srv.URL, t.TempDir()))
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", relay.URL+fmt.Sprintf("/v2/library/x/blobs/sha256:%064x", i+1), nil)
			req.Host = hubHost
			if resp, err := relay.Client().Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if up.peak.Load() < n {
		t.Fatalf("only %d of %d fills reached the upstream", up.peak.Load(), n)
	}
	if !waitFor(3*time.Second, func() bool { return up.open.Load() == 0 }) {
		t.Errorf("%d upstream transfers still running after every client left", up.open.Load())
	}
}

// openBlob starts a GET of a blob and reads its first byte.
func openBlob(t *testing.T, relay *httptest.Server, digest string) (*http.Response, context.CancelFunc, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	req, _ := http.NewRequestWithContext(ctx, "GET", relay.URL+"/v2/library/x/blobs/"+digest, nil)
	req.Host = hubHost
	resp, err := relay.Client().Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		cancel()
		t.Fatal(err)
	}
	return resp, cancel, first
}

// TestFillContinuesForRemainingReader: when one of two clients of a fill
// leaves (the leader or the follower), the other still gets verified
// bytes, the upstream is asked once, and the blob is cached.
func TestFillContinuesForRemainingReader(t *testing.T) {
	for _, leaderLeaves := range []bool{true, false} {
		t.Run(fmt.Sprintf("leader leaves %v", leaderLeaves), func(t *testing.T) {
			up := newBlobUpstream(t, 2<<20, 64<<10, 20*time.Millisecond)
			relay, _ := startRelay(t, cacheEnv(t, up.srv.URL, t.TempDir()))
			leader, cancelLeader, lfirst := openBlob(t, relay, up.digest)
			defer cancelLeader()
			follower, cancelFollower, ffirst := openBlob(t, relay, up.digest)
			defer cancelFollower()
			if c := follower.Header.Get("X-Relay-Cache"); c != "coalesced" {
				t.Fatalf("second client: cache %q, want coalesced", c)
			}
			stay, first, leave := follower, ffirst, cancelLeader
			if !leaderLeaves {
				stay, first, leave = leader, lfirst, cancelFollower
			}
			leave()
			h := sha256.New()
			h.Write(first)
			if _, err := io.Copy(h, stay.Body); err != nil {
				t.Fatalf("the remaining client's transfer broke: %v", err)
			}
			stay.Body.Close()
			if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != up.digest {
				t.Fatal("the remaining client got bytes that do not match the digest")
			}
			_, c, _ := fetchVia(t, relay, hubHost, "/v2/library/x/blobs/"+up.digest, "")
			if c != "hit" || up.gets.Load() != 1 {
				t.Errorf("after the fill: cache %q, upstream GETs %d, want a hit after one GET", c, up.gets.Load())
			}
		})
	}
}

// TestFillStepsAside: a blob larger than RELAY_CACHE_MAX_BYTES, or one
// whose size the upstream does not declare (no room can be reserved for
// it), is not cached, and the client still gets it from the answer the
// fill already had, without a second upstream GET.
func TestFillStepsAside(t *testing.T) {
	for _, tc := range []struct{ name, max, mode string }{
		{"larger than the cache", "64KiB", ""},
		{"no Content-Length", "10MiB", "chunked"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newBlobUpstream(t, 256<<10, 64<<10, 0)
			up.mode.Store(tc.mode)
			env := cacheEnv(t, up.srv.URL, t.TempDir())
			env["RELAY_CACHE_MAX_BYTES"] = tc.max
			relay, _ := startRelay(t, env)
			for i := range 2 {
				status, c, body := fetchVia(t, relay, hubHost, "/v2/library/x/blobs/"+up.digest, "")
				sum := sha256.Sum256(body)
				if status != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != up.digest || c != cacheBypassed {
					t.Fatalf("pull %d: status %d, cache %q, %d bytes; want the blob streamed with X-Relay-Cache %q", i, status, c, len(body), cacheBypassed)
				}
				if n := up.gets.Load(); n != int32(i+1) {
					t.Errorf("after %d pulls the upstream saw %d GETs", i+1, n)
				}
			}
		})
	}
}

// cacheBypassed is X-Relay-Cache for an answer the cache stepped aside for.
const cacheBypassed = "bypass"

// TestFailedAuthorizationCheckDoesNotAllow: a cache authorization check
// the upstream answers with a 5xx neither serves the cached blob nor is
// remembered, so the client is served once the upstream says yes.
func TestFailedAuthorizationCheckDoesNotAllow(t *testing.T) {
	blob := []byte(strings.Repeat("private layer ", 100))
	sum := sha256.Sum256(blob)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	var bobStatus atomic.Int32
	bobStatus.Store(http.StatusServiceUnavailable)
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "Bearer alice":
		case "Bearer bob":
			if s := int(bobStatus.Load()); s != http.StatusOK {
				http.Error(w, "upstream trouble", s)
				return
			}
		default:
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(blob)))
		_, _ = w.Write(blob)
	})
	relay, _ := startRelay(t, cacheEnv(t, up.URL, t.TempDir()))
	get := func(who string) (int, string) {
		resp := call(t, relay, "GET", hubHost, "/v2/library/x/blobs/"+digest, http.Header{"Authorization": {"Bearer " + who}})
		readAll(t, resp)
		return resp.StatusCode, resp.Header.Get("X-Relay-Cache")
	}
	get("alice")
	if s, c := get("alice"); s != http.StatusOK || c != "hit" {
		t.Fatalf("alice's second pull: %d cache %q", s, c)
	}
	if s, c := get("bob"); s == http.StatusOK || c != "" {
		t.Errorf("check answered 503: bob got %d cache %q, want the upstream's error", s, c)
	}
	bobStatus.Store(http.StatusOK)
	if s, c := get("bob"); s != http.StatusOK || c != "hit" {
		t.Errorf("after the upstream recovered: bob got %d cache %q, want a hit", s, c)
	}
}
