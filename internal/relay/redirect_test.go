package relay_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fakeCDN serves any path with a fixed body and fails the test if a
// request carries Authorization: signed CDN URLs reject it.
func fakeCDN(t *testing.T, body string) *httptest.Server {
	t.Helper()
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("CDN received Authorization %q for %s", r.Header.Get("Authorization"), r.URL)
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if r.URL.Query().Get("sig") != "ok" {
			t.Errorf("CDN URL lost its signature query: %s", r.URL)
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(w, r, "", time.Time{}, strings.NewReader(body))
	}))
	t.Cleanup(cdn.Close)
	return cdn
}

func TestBlobRedirectFollowedWithoutAuthorization(t *testing.T) {
	cdn := fakeCDN(t, "0123456789")
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			t.Errorf("upstream did not get the client's token")
		}
		http.Redirect(w, r, cdn.URL+"/blob/1?sig=ok", http.StatusTemporaryRedirect)
	})
	relay, _ := startRelay(t, hubEnv(up.URL))
	digest := "sha256:" + strings.Repeat("e", 64)
	auth := http.Header{"Authorization": {"Bearer tok"}}

	resp := call(t, relay, "GET", hubHost, "/v2/x/blobs/"+digest, auth)
	if body := readAll(t, resp); resp.StatusCode != 200 || string(body) != "0123456789" {
		t.Fatalf("GET blob: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Docker-Content-Digest") != digest {
		t.Errorf("Docker-Content-Digest = %q, want the requested digest", resp.Header.Get("Docker-Content-Digest"))
	}

	rng := http.Header{"Authorization": {"Bearer tok"}, "Range": {"bytes=3-5"}}
	resp = call(t, relay, "GET", hubHost, "/v2/x/blobs/"+digest, rng)
	if body := readAll(t, resp); resp.StatusCode != http.StatusPartialContent || string(body) != "345" {
		t.Errorf("ranged GET through redirect: %d %q", resp.StatusCode, body)
	}

	resp = call(t, relay, "HEAD", hubHost, "/v2/x/blobs/"+digest, auth)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength != 10 {
		t.Errorf("HEAD blob: %d length %d, want 200 length 10", resp.StatusCode, resp.ContentLength)
	}
}

func TestRelativeManifestRedirect(t *testing.T) {
	// registry.k8s.io sends manifests to Artifact Registry, which may answer
	// with a relative Location on its own host.
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/artifacts/") {
			if r.Header.Get("Authorization") != "Bearer tok" {
				t.Errorf("same-host redirect lost Authorization")
			}
			w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
			fmt.Fprint(w, `{"schemaVersion":2}`)
			return
		}
		w.Header().Set("Location", "/artifacts"+r.URL.Path)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	relay, _ := startRelay(t, map[string]string{"RELAY_BASE_DOMAIN": "test", "K8S_UPSTREAM": up.URL})
	resp := call(t, relay, "GET", "k8s.test", "/v2/pause/manifests/3.10", http.Header{"Authorization": {"Bearer tok"}})
	if body := readAll(t, resp); resp.StatusCode != 200 || string(body) != `{"schemaVersion":2}` {
		t.Fatalf("manifest through relative redirect: %d %q", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.oci.image.index.v1+json" {
		t.Errorf("Content-Type = %q", ct)
	}
}

func TestPassBlobRedirects(t *testing.T) {
	cdn := fakeCDN(t, "blob")
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v2/") {
			// A same-host hop first: the relay follows it, token and all.
			w.Header().Set("Location", "/storage"+r.URL.Path)
		} else {
			w.Header().Set("Location", cdn.URL+"/blob?sig=ok")
		}
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	env := hubEnv(up.URL)
	env["RELAY_PASS_BLOB_REDIRECTS"] = "true"
	relay, _ := startRelay(t, env)
	resp := call(t, relay, "GET", hubHost, "/v2/x/blobs/sha256:"+strings.Repeat("f", 64), nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != cdn.URL+"/blob?sig=ok" {
		t.Errorf("got %d Location %q, want 307 to the CDN", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRefusedRedirects(t *testing.T) {
	for _, tc := range []struct{ name, location string }{
		{"loop", "/v2/library/x/manifests/latest"},
		{"non-http scheme", "file:///etc/passwd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Location", tc.location)
				w.WriteHeader(http.StatusFound)
			})
			relay, _ := startRelay(t, hubEnv(up.URL))
			wantOCIError(t, call(t, relay, "GET", hubHost, "/v2/x/manifests/latest", nil), http.StatusBadGateway, "UNAVAILABLE")
		})
	}
}
