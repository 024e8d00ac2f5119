package relay_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/registry"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// publicRouteRelay serves a relay with one route, public.test, whose
// upstream is public (registry.example) and answers a blob GET with a 307
// to the Location that locations holds for the repository's name.
func publicRouteRelay(t *testing.T, locations map[string]string, passBlobRedirects bool) *httptest.Server {
	t.Helper()
	route := &registry.Route{Name: "public", AccessDomain: "public.test", Upstream: &url.URL{Scheme: "http", Host: "registry.example"}}
	answer := func(req *http.Request) *http.Response {
		name, _, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/")
		return redirectTo(locations[name])(req)
	}
	return publicRelay(t, route, &fakePublic{answer: answer}, passBlobRedirects)
}

// TestPassedBlobRedirectsAreChecked: with RELAY_PASS_BLOB_REDIRECTS, a
// public upstream's blob redirect goes to the client only where the relay
// itself would have gone: a Location on the relay's own network, in any
// spelling, or that is not a plain http(s) URL to a host, is a 502 and the
// client never sees it. A CDN name is handed on as it came.
func TestPassedBlobRedirectsAreChecked(t *testing.T) {
	canary := relaytest.NewRecorder(t, nil)
	_, port, _ := strings.Cut(canary.Host, ":")
	refused := map[string]string{
		"loopback":        canary.URL + "/blob",
		"trailing-dot":    "http://127.0.0.1.:" + port + "/blob",
		"decimal":         "http://2130706433:" + port + "/blob",
		"hex":             "http://0x7f.0.0.1:" + port + "/blob",
		"octal":           "http://0177.0.0.1:" + port + "/blob",
		"short":           "http://127.1:" + port + "/blob",
		"localhost":       "http://localhost:" + port + "/blob",
		"localhost-dot":   "http://localhost.:" + port + "/blob",
		"ipv6-loopback":   "http://[::1]:" + port + "/blob",
		"ipv4-mapped":     "http://[::ffff:127.0.0.1]:" + port + "/blob",
		"metadata":        "http://169.254.169.254/latest/meta-data/",
		"metadata-dot":    "http://169.254.169.254./latest/meta-data/",
		"private":         "https://10.0.0.1/blob",
		"cgnat-metadata":  "http://100.100.100.200/latest/meta-data/",
		"unspecified":     "http://0.0.0.0:" + port + "/blob",
		"file":            "file:///etc/passwd",
		"gopher":          "gopher://cdn.example:70/_GET",
		"userinfo":        "https://user:secret@cdn.example/blob?sig=1",
		"userinfo-nopass": "https://user@cdn.example/blob?sig=1",
		"hostless":        "http:///blob",
		"port-only":       "http://:" + port + "/blob",
		"fullwidth":       "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:" + port + "/blob",
	}
	passed := map[string]string{
		"cdn":      "https://cdn.example/blob?sig=1",
		"cdn-http": "http://cdn.example/blob?sig=1", // the upstream is http itself
		"s3":       "https://bucket.s3.amazonaws.com/docker/registry/v2/blobs/sha256/aa/data?X-Amz-Signature=x",
	}
	locations := map[string]string{}
	for name, loc := range refused {
		locations["r/"+name] = loc
	}
	for name, loc := range passed {
		locations["p/"+name] = loc
	}
	srv := publicRouteRelay(t, locations, true)

	for name, loc := range refused {
		t.Run("refused/"+name, func(t *testing.T) {
			resp := callWithin(t, srv, http.MethodGet, "public.test", "/v2/r/"+name+"/blobs/"+digestA, nil, nil)
			if l := resp.Header.Get("Location"); l != "" {
				t.Errorf("the client was handed Location %q", l)
			}
			msg := wantOCIError(t, resp, http.StatusBadGateway, "UNAVAILABLE")
			if strings.Contains(msg, "secret") {
				t.Errorf("the message leaks the Location's password: %q", msg)
			}
			t.Logf("%s: %s", loc, msg)
		})
	}
	for name, loc := range passed {
		t.Run("passed/"+name, func(t *testing.T) {
			resp := callWithin(t, srv, http.MethodGet, "public.test", "/v2/p/"+name+"/blobs/"+digestA, nil, nil)
			resp.Body.Close()
			if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != loc {
				t.Errorf("got %d Location %q, want 307 to %s", resp.StatusCode, resp.Header.Get("Location"), loc)
			}
		})
	}
	if n := canary.Count(); n != 0 {
		t.Errorf("the loopback canary was contacted %d times", n)
	}
}

// TestRefusedBlobRedirectsRefusedWhenFollowed is the same corpus with
// RELAY_PASS_BLOB_REDIRECTS off: the relay follows blob redirects itself,
// and refuses every Location it would refuse to hand on.
func TestRefusedBlobRedirectsRefusedWhenFollowed(t *testing.T) {
	canary := relaytest.NewRecorder(t, nil)
	_, port, _ := strings.Cut(canary.Host, ":")
	locations := map[string]string{
		"loopback":     canary.URL + "/blob",
		"trailing-dot": "http://127.0.0.1.:" + port + "/blob",
		"decimal":      "http://2130706433:" + port + "/blob",
		"hex":          "http://0x7f.0.0.1:" + port + "/blob",
		"metadata":     "http://169.254.169.254/latest/meta-data/",
		"file":         "file:///etc/passwd",
		"userinfo":     "https://user:secret@cdn.example/blob?sig=1",
		"hostless":     "http:///blob",
	}
	srv := publicRouteRelay(t, locations, false)
	for name := range locations {
		t.Run(name, func(t *testing.T) {
			resp := callWithin(t, srv, http.MethodGet, "public.test", "/v2/"+name+"/blobs/"+digestA, nil, nil)
			wantOCIError(t, resp, http.StatusBadGateway, "UNAVAILABLE")
		})
	}
	if n := canary.Count(); n != 0 {
		t.Errorf("the loopback canary was contacted %d times", n)
	}
}
