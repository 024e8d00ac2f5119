package relay_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/cache"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// claimingUpstream is a registry somebody else controls: it answers 200
// to every HEAD (claiming to hold any digest), serves junk to GETs, and
// serves one tag, "known", with manifest bytes it does know. fault makes
// it answer 503.
func claimingUpstream(t *testing.T, manifest []byte, mediaType string) (*httptest.Server, *atomic.Bool) {
	t.Helper()
	var fault atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case fault.Load():
			http.Error(w, "down", http.StatusServiceUnavailable)
		case r.Method == http.MethodHead:
			w.WriteHeader(http.StatusOK)
		case strings.HasSuffix(r.URL.Path, "/manifests/known"):
			w.Header().Set("Content-Type", mediaType)
			_, _ = w.Write(manifest)
		default:
			_, _ = io.WriteString(w, "not yours")
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &fault
}

// fetchVia GETs path on host and returns what arrived, even if the relay
// cut the body (a failed fill).
func fetchVia(t *testing.T, srv *httptest.Server, host, path, accept string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Host = host
	req.Header.Set("Accept", accept)
	resp, err := srv.Client().Do(req)
	if err != nil {
		return 0, "", nil // the relay cut the connection: nothing was served
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Relay-Cache"), body
}

// TestCacheServesARouteOnlyWhatItsUpstreamSupplied: content filled via
// the Docker Hub route is not served via a route whose upstream claims
// every digest (by digest, by tag, stale), is served via another route
// once that route's own upstream supplied it, and provenance survives a
// restart.
func TestCacheServesARouteOnlyWhatItsUpstreamSupplied(t *testing.T) {
	reg := relaytest.NewRegistry(t, relaytest.RegistryOptions{})
	img := relaytest.RandomImage(t, 1, 4096)
	mdigest := relaytest.PushImage(t, reg, "library/app:1", img).String()
	manifest, _ := img.RawManifest()
	mt, _ := img.MediaType()
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	rc, _ := layers[0].Compressed()
	layer, _ := io.ReadAll(rc)
	rc.Close()
	evil, fault := claimingUpstream(t, manifest, string(mt))
	dir := t.TempDir()
	env := cacheEnv(t, reg.URL, dir)
	env["RELAY_CACHE_TAG_TTL"] = "30s"
	env["RELAY_CUSTOM_ROUTES"] = "evil,twin"
	env["EVIL_UPSTREAM"], env["EVIL_ACCESS_DOMAIN"] = evil.URL, "evil.test"
	env["TWIN_UPSTREAM"], env["TWIN_ACCESS_DOMAIN"] = reg.URL, "twin.test"
	clock := newClock()
	relay, _ := startRelayAt(t, env, clock.now)
	accept := string(mt)
	blobPath, digestPath := "/v2/library/app/blobs/"+ld.String(), "/v2/library/app/manifests/"+mdigest

	for _, p := range []string{"/v2/app/manifests/1", "/v2/app/blobs/" + ld.String(), "/v2/app/blobs/" + ld.String(), "/v2/app/manifests/" + mdigest} {
		fetchVia(t, relay, hubHost, p, accept)
	}
	if _, c, _ := fetchVia(t, relay, hubHost, "/v2/app/blobs/"+ld.String(), accept); c != "hit" {
		t.Fatalf("the Docker Hub route's fill is not cached (cache %q)", c)
	}
	assertNotServed := func(when string) {
		t.Helper()
		for _, p := range []string{blobPath, digestPath, "/v2/library/app/manifests/1"} {
			_, c, body := fetchVia(t, relay, "evil.test", p, accept)
			if c == "hit" || c == "stale" || c == "coalesced" || bytes.Equal(body, layer) || bytes.Equal(body, manifest) {
				t.Errorf("%s: GET %s via the claiming route got the cached content (cache %q)", when, p, c)
			}
		}
	}
	assertNotServed("after the Docker Hub fill")

	// Stale: the claiming route's own capture of a manifest it knows is
	// served stale in an outage; once the entry is replaced by another
	// route's fill (evicted and refilled), it is not.
	known := "/v2/team/app/manifests/known"
	if s, _, body := fetchVia(t, relay, "evil.test", known, accept); s != http.StatusOK || !bytes.Equal(body, manifest) {
		t.Fatalf("the claiming route's own tag: %d", s)
	}
	clock.advance(time.Minute) // past the tag TTL, within the stale bound
	fault.Store(true)
	if _, c, _ := fetchVia(t, relay, "evil.test", known, accept); c != "stale" {
		t.Errorf("the route's own manifest was not served stale in an outage (cache %q)", c)
	}
	evict(t, dir, mdigest)
	fetchVia(t, relay, hubHost, "/v2/app/manifests/"+mdigest, accept)
	if _, c, _ := fetchVia(t, relay, hubHost, "/v2/app/manifests/"+mdigest, accept); c != "hit" {
		t.Fatalf("refill via Docker Hub not cached (cache %q)", c)
	}
	if _, c, body := fetchVia(t, relay, "evil.test", known, accept); c == "stale" || bytes.Equal(body, manifest) {
		t.Errorf("stale tag served content another route's upstream supplied (cache %q)", c)
	}
	fault.Store(false)

	// An honest second route to the same registry: a miss first (its own
	// upstream supplies the bytes), a hit after.
	for _, p := range []string{blobPath, digestPath} {
		if _, c, body := fetchVia(t, relay, "twin.test", p, accept); c == "hit" || (!bytes.Equal(body, layer) && !bytes.Equal(body, manifest)) {
			t.Errorf("first GET %s via twin: cache %q, or wrong bytes", p, c)
		}
		if _, c, _ := fetchVia(t, relay, "twin.test", p, accept); c != "hit" {
			t.Errorf("GET %s via twin after its own upstream supplied it: cache %q, want hit", p, c)
		}
	}

	relay.Close()
	relay, _ = startRelay(t, env)
	for _, p := range []string{blobPath, digestPath} {
		if _, c, _ := fetchVia(t, relay, "twin.test", p, accept); c != "hit" {
			t.Errorf("after a restart, GET %s via twin: cache %q, want hit", p, c)
		}
	}
	assertNotServed("after a restart")
}

// evict removes an entry from the cache directory, as LRU eviction would.
func evict(t *testing.T, dir, digest string) {
	t.Helper()
	hex := strings.TrimPrefix(digest, "sha256:")
	p := filepath.Join(dir, "content", "sha256", hex[:2], hex)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	os.Remove(p + ".meta")
}

// TestEntriesWithoutProvenanceAreRefilled: content cached before
// provenance was recorded is served to no route; the next pull fills it
// from the route's upstream, and then it is a hit.
func TestEntriesWithoutProvenanceAreRefilled(t *testing.T) {
	up := newBlobUpstream(t, 64<<10, 16<<10, 0)
	dir := t.TempDir()
	store, err := cache.OpenDisk(dir, 1<<30, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, _ := store.Create(t.Context(), up.digest, cache.Meta{ContentType: "application/octet-stream"})
	_, _ = w.Write(up.blob)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	relay, _ := startRelay(t, cacheEnv(t, up.srv.URL, dir))
	path := "/v2/library/x/blobs/" + up.digest
	if _, c, body := fetchVia(t, relay, hubHost, path, ""); c != "miss" || !bytes.Equal(body, up.blob) {
		t.Errorf("legacy entry: cache %q, want a verified miss", c)
	}
	if _, c, _ := fetchVia(t, relay, hubHost, path, ""); c != "hit" || up.gets.Load() != 1 {
		t.Errorf("after the refill: cache %q, upstream GETs %d", c, up.gets.Load())
	}
}
