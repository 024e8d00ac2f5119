package relay_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// endlessBody writes prefix, then spaces until the request ends, the time
// bound passes, or limit bytes went out, and reports how much it wrote.
func endlessBody(w http.ResponseWriter, r *http.Request, prefix string, limit int64, wrote chan<- int64) {
	ctx, cancel := context.WithTimeout(r.Context(), 15*time.Second)
	defer cancel()
	var n int64
	defer func() { wrote <- n }()
	_, _ = io.WriteString(w, prefix)
	chunk := bytes.Repeat([]byte(" "), 32<<10)
	for ctx.Err() == nil && n < limit {
		m, err := w.Write(chunk)
		if n += int64(m); err != nil {
			return
		}
		w.(http.Flusher).Flush()
	}
}

// TestEveryUpstreamBodyIsBounded: besides manifests, error answers (JSON
// ones included) and lists (tags, referrers) have bounds, so a client
// cannot hold an endless stream that no transfer limit counts. An endless
// JSON error becomes the relay's own error; an endless tag list is cut
// after 16 MiB, never relayed whole.
func TestEveryUpstreamBodyIsBounded(t *testing.T) {
	const limit = 64 << 20
	wrote := make(chan int64, 4)
	up := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.Contains(r.URL.Path, "/manifests/"):
			w.WriteHeader(http.StatusNotFound)
			endlessBody(w, r, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"`, limit, wrote)
		case strings.HasSuffix(r.URL.Path, "/tags/list"):
			endlessBody(w, r, `{"name":"library/x","tags":["`, limit, wrote)
		case strings.Contains(r.URL.Path, "/referrers/"):
			w.Header().Set("Content-Length", "20000000")
			_, _ = io.WriteString(w, `{"manifests":[`)
		}
	})
	relay, _ := startRelay(t, hubEnv(up.URL))

	resp := callWithin(t, relay, http.MethodGet, hubHost, "/v2/x/manifests/latest", nil, nil)
	if body := readAll(t, resp); resp.StatusCode != http.StatusNotFound || len(body) > 1<<10 || !strings.Contains(string(body), "MANIFEST_UNKNOWN") {
		t.Errorf("endless JSON error: %d, %d bytes; want the relay's own 404 MANIFEST_UNKNOWN", resp.StatusCode, len(body))
	}
	if n := <-wrote; n >= limit {
		t.Errorf("the upstream wrote %d bytes of error body before the relay stopped reading", n)
	}

	resp = callWithin(t, relay, http.MethodGet, hubHost, "/v2/x/tags/list", nil, nil)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n > 16<<20 {
		t.Errorf("endless tag list: %d bytes, read error %v; want a cut at 16 MiB", n, err)
	}
	<-wrote

	resp = callWithin(t, relay, http.MethodGet, hubHost, "/v2/x/referrers/sha256:"+strings.Repeat("a", 64), nil, nil)
	wantOCIError(t, resp, http.StatusBadGateway, "UNAVAILABLE")
}

// TestEncodedManifestsAreNotCached: the relay asks for no content coding
// (a client's Accept-Encoding stays with it), and an upstream that gzips a
// manifest anyway has it relayed as it came but not cached, so no later
// client gets encoded bytes presented as the manifest.
func TestEncodedManifestsAreNotCached(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}`)
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	_, _ = zw.Write(manifest)
	zw.Close()
	up := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Content-Encoding", "gzip")
		_, _ = w.Write(zipped.Bytes())
	})
	relay, _ := startRelay(t, cacheEnv(t, up.URL, t.TempDir()))
	for i := range 2 {
		resp := callWithin(t, relay, http.MethodGet, hubHost, "/v2/x/manifests/latest", http.Header{"Accept-Encoding": {"gzip"}}, nil)
		readAll(t, resp)
		if c := resp.Header.Get("X-Relay-Cache"); c == "hit" {
			t.Fatalf("request %d: an encoded manifest was served from the cache", i)
		}
		if ae := up.Last(t).Header.Get("Accept-Encoding"); ae != "" {
			t.Errorf("the upstream was asked for Accept-Encoding %q", ae)
		}
	}
	if n := up.Count(); n != 2 {
		t.Errorf("upstream saw %d requests, want 2 (nothing cached)", n)
	}
}
