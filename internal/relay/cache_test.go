package relay_test

import (
	"crypto/rand"
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

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// blobUpstream serves one blob slowly, counts GETs of it, and can be told
// to die mid-body or to corrupt the bytes.
type blobUpstream struct {
	t        *testing.T
	srv      *httptest.Server
	blob     []byte
	digest   string
	gets     atomic.Int32
	sent     atomic.Int64 // body bytes written, over every request
	mode     atomic.Value // "", "die", "corrupt"
	chunk    int
	pause    time.Duration
	finished atomic.Int64 // unix nanos of the last byte written
}

func newBlobUpstream(t *testing.T, size, chunk int, pause time.Duration) *blobUpstream {
	u := &blobUpstream{t: t, blob: make([]byte, size), chunk: chunk, pause: pause}
	_, _ = rand.Read(u.blob)
	sum := sha256.Sum256(u.blob)
	u.digest = "sha256:" + hex.EncodeToString(sum[:])
	u.mode.Store("")
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *blobUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/blobs/"+u.digest) {
		http.NotFound(w, r)
		return
	}
	start := 0
	if rg, ok := strings.CutPrefix(r.Header.Get("Range"), "bytes="); ok && strings.HasSuffix(rg, "-") {
		start, _ = strconv.Atoi(strings.TrimSuffix(rg, "-"))
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(u.blob)-1, len(u.blob)))
	}
	if u.mode.Load().(string) != "chunked" {
		w.Header().Set("Content-Length", strconv.Itoa(len(u.blob)-start))
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	if r.Method == http.MethodHead {
		return
	}
	u.gets.Add(1)
	if start > 0 {
		w.WriteHeader(http.StatusPartialContent)
	}
	mode := u.mode.Load().(string)
	for off := start; off < len(u.blob); off += u.chunk {
		if mode == "die" && off >= len(u.blob)/2 {
			panic(http.ErrAbortHandler)
		}
		part := u.blob[off:min(off+u.chunk, len(u.blob))]
		if mode == "corrupt" && off == 0 {
			part = append([]byte{part[0] ^ 0xff}, part[1:]...)
		}
		n, err := w.Write(part)
		u.sent.Add(int64(n))
		if err != nil {
			return
		}
		w.(http.Flusher).Flush()
		time.Sleep(u.pause)
	}
	u.finished.Store(time.Now().UnixNano())
}

func cacheEnv(t *testing.T, upstream string, dir string) map[string]string {
	env := hubEnv(upstream)
	env["RELAY_CACHE_DIR"] = dir
	return env
}

// getBlob fetches a blob through the relay and returns the digest of what
// arrived, hashing as it reads (50 clients x 64 MiB must not sit in memory).
func getBlob(relay *httptest.Server, digest string, onFirstByte func()) (string, error) {
	return getBlobAfter(relay, digest, 1, onFirstByte)
}

// getBlobAfter is getBlob calling at (if not nil) once n bytes arrived.
func getBlobAfter(relay *httptest.Server, digest string, n int64, at func()) (string, error) {
	req, _ := http.NewRequest("GET", relay.URL+"/v2/library/x/blobs/"+digest, nil)
	req.Host = hubHost
	resp, err := relay.Client().Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	h := sha256.New()
	if _, err := io.CopyN(h, resp.Body, n); err != nil {
		return "", err
	}
	if at != nil {
		at()
	}
	if _, err := io.Copy(h, resp.Body); err != nil {
		return "", err
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// TestConcurrentColdPullsFetchOnce: 50 clients ask for one uncached 64 MiB
// blob at once; the upstream sees one GET, every client gets verified
// bytes, and bytes reach clients while the upstream is still sending.
func TestConcurrentColdPullsFetchOnce(t *testing.T) {
	up := newBlobUpstream(t, 64<<20, 1<<20, 15*time.Millisecond)
	relay, a := startRelay(t, cacheEnv(t, up.srv.URL, t.TempDir()))
	var firstByte atomic.Int64
	pullConcurrently(t, relay, up.digest, 50, func() { firstByte.CompareAndSwap(0, time.Now().UnixNano()) })
	if n := up.gets.Load(); n != 1 {
		t.Errorf("upstream blob GETs = %d, want 1", n)
	}
	if firstByte.Load() >= up.finished.Load() {
		t.Error("no client got a byte before the upstream finished: followers waited for the whole download")
	}
	text := scrape(t, a.Gatherer())
	for _, want := range []string{`result="miss",route="dockerhub"} 1`, `result="coalesced",route="dockerhub"}`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// And now it is a hit, with Range and HEAD served from the cache.
	if _, err := getBlob(relay, up.digest, nil); err != nil || up.gets.Load() != 1 {
		t.Errorf("cached blob: err %v, upstream GETs %d", err, up.gets.Load())
	}
	resp := call(t, relay, "GET", hubHost, "/v2/library/x/blobs/"+up.digest, http.Header{"Range": {"bytes=10-19"}})
	part := readAll(t, resp)
	if resp.StatusCode != http.StatusPartialContent || string(part) != string(up.blob[10:20]) || resp.Header.Get("X-Relay-Cache") != "hit" {
		t.Errorf("ranged hit: %d %q", resp.StatusCode, resp.Header.Get("X-Relay-Cache"))
	}
	resp = call(t, relay, "HEAD", hubHost, "/v2/library/x/blobs/"+up.digest, nil)
	resp.Body.Close()
	if resp.ContentLength != int64(len(up.blob)) || resp.Header.Get("Docker-Content-Digest") != up.digest {
		t.Errorf("HEAD hit: length %d digest %q", resp.ContentLength, resp.Header.Get("Docker-Content-Digest"))
	}
}

// TestBrokenFillsAreNeverServed: an upstream that dies mid-blob or sends
// corrupt bytes gives every client an error and leaves nothing cached;
// the next request fetches again.
func TestBrokenFillsAreNeverServed(t *testing.T) {
	for _, mode := range []string{"die", "corrupt"} {
		t.Run(mode, func(t *testing.T) {
			up := newBlobUpstream(t, 4<<20, 256<<10, time.Millisecond)
			relay, _ := startRelay(t, cacheEnv(t, up.srv.URL, t.TempDir()))
			up.mode.Store(mode)
			var wg sync.WaitGroup
			for range 5 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if got, err := getBlob(relay, up.digest, nil); err == nil {
						t.Errorf("client got a complete body (%s) and no error from a broken upstream transfer", got)
					}
				}()
			}
			wg.Wait()
			up.mode.Store("")
			before := up.gets.Load()
			got, err := getBlob(relay, up.digest, nil)
			if err != nil || got != up.digest {
				t.Fatalf("refetch after a broken fill: %s, %v", got, err)
			}
			if up.gets.Load() != before+1 {
				t.Error("the broken fill was published: no refetch happened")
			}
		})
	}
}

func TestCacheSurvivesRestart(t *testing.T) {
	up := newBlobUpstream(t, 1<<20, 64<<10, 0)
	dir := t.TempDir()
	relay1, _ := startRelay(t, cacheEnv(t, up.srv.URL, dir))
	if _, err := getBlob(relay1, up.digest, nil); err != nil {
		t.Fatal(err)
	}
	relay1.Close()
	relay2, _ := startRelay(t, cacheEnv(t, up.srv.URL, dir))
	if got, err := getBlob(relay2, up.digest, nil); err != nil || got != up.digest {
		t.Fatal(got, err)
	}
	if n := up.gets.Load(); n != 1 {
		t.Errorf("upstream GETs = %d after a restart, want the first one only", n)
	}
}

// TestCachedPrivateImageStaysPrivate: alice's pull fills the cache with a
// private image; an anonymous client must still get the upstream's 401 for
// every part of it.
func TestCachedPrivateImageStaysPrivate(t *testing.T) {
	w := newWorld(t, "RELAY_CACHE_DIR", t.TempDir())
	img := relaytest.RandomImage(t, 1, 4096)
	relaytest.PushImage(t, w.hub, "private/secret:v1", img)
	alice := &authn.Basic{Username: "alice", Password: "wonderland"}
	pulled, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, alice)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(pulled); err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, nil)...); err == nil {
		t.Fatal("anonymous client pulled a private image from the cache")
	}
	layers, _ := img.Layers()
	layer, _ := layers[0].Digest()
	manifest, _ := img.Digest()
	for _, path := range []string{
		"/v2/private/secret/blobs/" + layer.String(),
		"/v2/private/secret/manifests/" + manifest.String(),
		"/v2/private/secret/manifests/v1",
	} {
		resp := call(t, w.relay, "GET", hubHost, path, nil)
		readAll(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("X-Relay-Cache") != "" {
			t.Errorf("anonymous GET %s: %d (cache %q), want the upstream's 401", path, resp.StatusCode, resp.Header.Get("X-Relay-Cache"))
		}
	}
	// Alice, with a fresh token, is served from the cache.
	if _, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, alice)...); err != nil {
		t.Fatal(err)
	}
	if !scrapeHas(t, w.app.Gatherer(), `result="hit",route="dockerhub"}`) {
		t.Error("the authorized second pull was not served from the cache")
	}
}

// TestStaleTagIfUpstreamFails: a tag resolved before an outage is served,
// marked stale, while the upstream answers 503 or is gone, but only up to
// RELAY_CACHE_STALE_MAX.
func TestStaleTagIfUpstreamFails(t *testing.T) {
	var fault faultSwitch
	reg := relaytest.NewRegistry(t, relaytest.RegistryOptions{Wrap: fault.wrap})
	want := relaytest.PushImage(t, reg, "library/app:1", relaytest.RandomImage(t, 1, 2048))
	env := cacheEnv(t, reg.URL, t.TempDir())
	env["RELAY_CACHE_TAG_TTL"] = "30s"
	env["RELAY_CACHE_STALE_MAX"] = "1h"
	clock := newClock()
	relay, _ := startRelayAt(t, env, clock.now)
	accept := http.Header{"Accept": {"application/vnd.docker.distribution.manifest.v2+json"}}
	headTag := func() *http.Response {
		resp := call(t, relay, "GET", hubHost, "/v2/app/manifests/1", accept)
		readAll(t, resp)
		return resp
	}
	if resp := headTag(); resp.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %d", resp.StatusCode)
	}
	clock.advance(time.Minute) // past the TTL: the next request asks the upstream
	// An upstream that answers 503 and one that cannot be reached get the
	// same stale answer, ETag included, and a conditional request a 304.
	stale := func(why string) {
		t.Helper()
		resp := headTag()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Relay-Cache") != "stale" || resp.Header.Get("Docker-Content-Digest") != want.String() ||
			resp.Header.Get("ETag") != `"`+want.String()+`"` {
			t.Fatalf("%s: %d cache %q digest %q etag %q, want the stale answer", why, resp.StatusCode,
				resp.Header.Get("X-Relay-Cache"), resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("ETag"))
		}
		cond := http.Header{"Accept": accept["Accept"], "If-None-Match": {`"` + want.String() + `"`}}
		resp = call(t, relay, "GET", hubHost, "/v2/app/manifests/1", cond)
		readAll(t, resp)
		if resp.StatusCode != http.StatusNotModified {
			t.Fatalf("%s: conditional request got %d, want 304", why, resp.StatusCode)
		}
	}
	fault.status.Store(http.StatusServiceUnavailable)
	stale("during a 503")
	reg.Close()
	stale("upstream gone")
	clock.advance(time.Hour)
	if resp := headTag(); resp.StatusCode == http.StatusOK {
		t.Error("a tag older than RELAY_CACHE_STALE_MAX was still served")
	}
}

// TestCachedBlobNotServedThroughAnotherRepository: content is stored by
// digest, so a client allowed to read one repository must not get a
// private blob cached from another by naming its digest there.
func TestCachedBlobNotServedThroughAnotherRepository(t *testing.T) {
	w := newWorld(t, "RELAY_CACHE_DIR", t.TempDir())
	secret := relaytest.RandomImage(t, 1, 4096)
	relaytest.PushImage(t, w.hub, "private/secret:v1", secret)
	relaytest.PushImage(t, w.hub, "library/pub:1", relaytest.RandomImage(t, 1, 1024))
	alice := &authn.Basic{Username: "alice", Password: "wonderland"}
	pulled, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, alice)...)
	if err != nil || validate.Image(pulled) != nil {
		t.Fatalf("alice's pull: %v", err)
	}
	if _, err := remote.Image(ref(t, "dhcr.test/pub:1"), w.options(t, nil)...); err != nil {
		t.Fatal(err)
	}
	layers, _ := secret.Layers()
	layer, _ := layers[0].Digest()
	resp := getWithTokenFlow(t, w, hubHost, "/v2/library/pub/blobs/"+layer.String())
	readAll(t, resp)
	if resp.StatusCode == http.StatusOK || resp.Header.Get("X-Relay-Cache") != "" {
		t.Errorf("private blob served through a public repository: %d, cache %q", resp.StatusCode, resp.Header.Get("X-Relay-Cache"))
	}
}

// TestConcurrentSmallBlobFill: the fill of a small blob ends (and its
// spool is renamed) before most followers start reading; all of them
// must still get it.
func TestConcurrentSmallBlobFill(t *testing.T) {
	up := newBlobUpstream(t, 700, 700, 0)
	relay, _ := startRelay(t, cacheEnv(t, up.srv.URL, t.TempDir()))
	pullConcurrently(t, relay, up.digest, 64, nil)
}

// pullConcurrently has n clients fetch a blob at once and fails the test
// unless every one of them gets exactly its bytes.
func pullConcurrently(t *testing.T, relay *httptest.Server, digest string, n int, onFirstByte func()) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := getBlob(relay, digest, onFirstByte)
			if err == nil && got != digest {
				err = fmt.Errorf("client got bytes that do not match the digest")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}
