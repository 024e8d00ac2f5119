package relay_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// manifestBound is distribution's bound on a manifest, which the relay
// applies to what it relays.
const manifestBound = 4 << 20

// endlessLimit is where the endless manifest stops on its own, so that a
// relay that does not bound manifests fails the test instead of hanging.
const endlessLimit = 64 << 20

// manifestUpstream serves manifests of chosen sizes by tag:
// "declared-<n>" with Content-Length n, "chunked-<n>" of unknown length,
// and "endless", which writes until its request ends (or endlessLimit, or
// 15 s) and reports how much it wrote on ended.
type manifestUpstream struct {
	srv   *httptest.Server
	ended chan int64
}

func newManifestUpstream(t *testing.T) *manifestUpstream {
	t.Helper()
	u := &manifestUpstream{ended: make(chan int64, 16)}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

// manifestOfSize is n bytes of a manifest-looking body, the same for the
// same n.
func manifestOfSize(n int) []byte {
	head := `{"schemaVersion":2,"mediaType":"` + manifestType + `","annotations":{"pad":"`
	if n < len(head)+3 {
		return bytes.Repeat([]byte("x"), n)
	}
	return []byte(head + strings.Repeat("p", n-len(head)-3) + `"}}`)
}

func (u *manifestUpstream) serve(w http.ResponseWriter, r *http.Request) {
	tag := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	w.Header().Set("Content-Type", manifestType)
	kind, size, _ := strings.Cut(tag, "-")
	n, _ := strconv.Atoi(size)
	switch kind {
	case "declared":
		w.Header().Set("Content-Length", strconv.Itoa(n))
		if r.Method == http.MethodGet {
			_, _ = w.Write(manifestOfSize(n))
		}
	case "chunked":
		if r.Method != http.MethodGet {
			return
		}
		body := manifestOfSize(n)
		for off := 0; off < len(body); off += 64 << 10 {
			_, _ = w.Write(body[off:min(off+64<<10, len(body))])
			w.(http.Flusher).Flush() // no Content-Length: chunked
		}
	case "endless":
		u.endless(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (u *manifestUpstream) endless(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	chunk := bytes.Repeat([]byte(" "), 32<<10)
	var n int64
	defer func() { u.ended <- n }()
	_, _ = w.Write([]byte(`{"schemaVersion":2,`))
	for ctx.Err() == nil && n < endlessLimit {
		m, err := w.Write(chunk)
		n += int64(m)
		if err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

// manifestBoundSetups are the ways a manifest reaches a client: the
// proxy, and the cache capturing it, on the route and the mirror host.
func manifestBoundSetups(t *testing.T, upstream string) []manifestSetup {
	plain, _ := startRelay(t, hubEnv(upstream))
	cached, _ := startRelay(t, cacheEnv(t, upstream, t.TempDir()))
	return []manifestSetup{
		{"route", hubHost, plain, false},
		{"mirror", mirrorHost, plain, false},
		{"cache/route", hubHost, cached, true},
		{"cache/mirror", mirrorHost, cached, true},
	}
}

type manifestSetup struct {
	name, host string
	relay      *httptest.Server
	cached     bool
}

// TestOversizedManifestRefused: a manifest over 4 MiB, declared or found
// while reading, is a 502 MANIFEST_INVALID before any of it reaches the
// client; a manifest that never ends is cut soon after the bound.
func TestOversizedManifestRefused(t *testing.T) {
	up := newManifestUpstream(t)
	for _, s := range manifestBoundSetups(t, up.srv.URL) {
		t.Run(s.name, func(t *testing.T) {
			for _, tag := range []string{
				"declared-" + strconv.Itoa(5<<20),
				"declared-" + strconv.Itoa(manifestBound+1),
				"chunked-" + strconv.Itoa(manifestBound+1),
				"chunked-" + strconv.Itoa(5<<20),
			} {
				resp := callWithin(t, s.relay, http.MethodGet, s.host, "/v2/library/x/manifests/"+tag, nil, nil)
				if msg := wantOCIError(t, resp, http.StatusBadGateway, "MANIFEST_INVALID"); !strings.Contains(msg, "4 MiB") {
					t.Errorf("%s: message %q does not name the bound", tag, msg)
				}
			}
			resp := callWithin(t, s.relay, http.MethodHead, s.host, "/v2/library/x/manifests/declared-"+strconv.Itoa(5<<20), nil, nil)
			if body := readAll(t, resp); resp.StatusCode != http.StatusBadGateway || len(body) != 0 {
				t.Errorf("HEAD of a 5 MiB manifest: %d with %d body bytes, want 502 and none", resp.StatusCode, len(body))
			}
			if cl := resp.Header.Get("Content-Length"); cl == strconv.Itoa(5<<20) {
				t.Errorf("HEAD answer kept the upstream's Content-Length %s", cl)
			}
		})
	}
}

// TestEndlessManifestCut: a manifest of unknown length that never ends
// gets the client a clear 502, and the relay stops reading it about at
// the bound: the upstream's request ends soon, well before it would stop
// on its own.
func TestEndlessManifestCut(t *testing.T) {
	up := newManifestUpstream(t)
	for _, s := range manifestBoundSetups(t, up.srv.URL) {
		t.Run(s.name, func(t *testing.T) {
			start := time.Now()
			resp := callWithin(t, s.relay, http.MethodGet, s.host, "/v2/library/x/manifests/endless", nil, nil)
			wantOCIError(t, resp, http.StatusBadGateway, "MANIFEST_INVALID")
			select {
			case n := <-up.ended:
				t.Logf("the upstream wrote %d bytes", n)
				if n >= 16<<20 {
					t.Errorf("the upstream wrote %d MiB before its request ended, want about 4", n>>20)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream's request did not end within 10 s of the refusal")
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("refusing took %v", d)
			}
		})
	}
}

// TestManifestUnderTheBoundServedWhole: manifests of unknown length up to
// exactly 4 MiB, and a declared 4 MiB one, reach the client whole and
// byte for byte, again from the cache when it is on.
func TestManifestUnderTheBoundServedWhole(t *testing.T) {
	up := newManifestUpstream(t)
	for _, s := range manifestBoundSetups(t, up.srv.URL) {
		t.Run(s.name, func(t *testing.T) {
			for _, tc := range []struct {
				tag  string
				size int
			}{
				{"chunked-2", 2},
				{"chunked-100000", 100000},
				{"chunked-" + strconv.Itoa(manifestBound), manifestBound},
				{"declared-" + strconv.Itoa(manifestBound), manifestBound},
			} {
				want := manifestOfSize(tc.size)
				for i := range 2 {
					resp := callWithin(t, s.relay, http.MethodGet, s.host, "/v2/library/x/manifests/"+tc.tag, nil, nil)
					body := readAll(t, resp)
					if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
						t.Fatalf("%s, request %d: got %d with %d bytes, want 200 with the %d upstream bytes",
							tc.tag, i, resp.StatusCode, len(body), len(want))
					}
					if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(want)) {
						t.Errorf("%s: Content-Length %s for %d bytes", tc.tag, cl, len(want))
					}
					// The mirror's requests share the route's tag keys, so
					// there even the first may be a hit.
					if got := resp.Header.Get("X-Relay-Cache"); s.cached && i == 1 && got != "hit" {
						t.Errorf("%s, request %d: X-Relay-Cache %q, want hit", tc.tag, i, got)
					}
				}
			}
		})
	}
}
