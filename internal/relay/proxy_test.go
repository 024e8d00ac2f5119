package relay_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/registry"
)

const hubHost = "dhcr.test"

// fakeUpstream records the last request it saw and answers with h.
func fakeUpstream(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Pointer[http.Request]) {
	t.Helper()
	var last atomic.Pointer[http.Request]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		last.Store(r.Clone(context.Background()))
		h(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, &last
}

func TestLibraryPatchOnEveryEndpoint(t *testing.T) {
	up, last := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	relay, _ := startRelay(t, hubEnv(up.URL))
	digest := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct{ in, want string }{
		{"/v2/nginx/manifests/latest", "/v2/library/nginx/manifests/latest"},
		{"/v2/library/nginx/manifests/latest", "/v2/library/nginx/manifests/latest"},
		{"/v2/nginx/blobs/" + digest, "/v2/library/nginx/blobs/" + digest},
		{"/v2/nginx/tags/list?n=10", "/v2/library/nginx/tags/list?n=10"},
		{"/v2/nginx/referrers/" + digest, "/v2/library/nginx/referrers/" + digest},
		{"/v2/someuser/app/manifests/v1", "/v2/someuser/app/manifests/v1"},
		{"/v2/nginx/manifests/latest?ns=docker.io", "/v2/library/nginx/manifests/latest"},
	} {
		resp := call(t, relay, http.MethodGet, hubHost, tc.in, nil)
		resp.Body.Close()
		if got := last.Load().URL.RequestURI(); got != tc.want {
			t.Errorf("%s reached upstream as %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestHeadersPassThrough(t *testing.T) {
	up, last := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
		w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("b", 64))
		w.Header().Set("ETag", `"x"`)
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "secret")
		w.Header().Set("Set-Cookie", "upstream=1")
		w.Header().Set("Content-Range", "bytes 2-5/10")
		w.WriteHeader(http.StatusPartialContent)
		fmt.Fprint(w, "2345")
	})
	relay, _ := startRelay(t, hubEnv(up.URL))
	hdr := http.Header{"Range": {"bytes=2-5"}, "Accept": {"application/vnd.oci.image.manifest.v1+json"},
		"Authorization": {"Bearer tok"}, "Cookie": {"relay=1"}, "If-None-Match": {`"y"`}}
	resp := call(t, relay, http.MethodGet, hubHost, "/v2/library/x/manifests/latest", hdr)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusPartialContent || string(body) != "2345" {
		t.Fatalf("got %d %q, want 206 \"2345\"", resp.StatusCode, body)
	}
	for _, h := range []string{"Content-Type", "Docker-Content-Digest", "ETag", "Content-Range"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("response lost %s", h)
		}
	}
	if resp.Header.Get("X-Hop") != "" || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("hop-by-hop or cookie header leaked to client: %v", resp.Header)
	}
	got := last.Load().Header
	for _, h := range []string{"Range", "Accept", "Authorization", "If-None-Match"} {
		if got.Get(h) != hdr.Get(h) {
			t.Errorf("upstream saw %s=%q, want %q", h, got.Get(h), hdr.Get(h))
		}
	}
	if got.Get("Cookie") != "" || got.Get("X-Forwarded-For") != "" {
		t.Errorf("upstream saw client cookie or X-Forwarded-For: %v", got)
	}
	if got.Get("Accept-Encoding") != "" {
		t.Errorf("transport added Accept-Encoding %q; bodies must stay byte-exact", got.Get("Accept-Encoding"))
	}
}

func TestChallengeRewrite(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("WWW-Authenticate", `Basic realm="Registry", Bearer realm="http://auth.invalid/token",service="svc",scope="repository:library/x:pull,push"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	relay, _ := startRelay(t, map[string]string{
		"RELAY_BASE_DOMAIN": "test", "DOCKERHUB_UPSTREAM": up.URL, "RELAY_TRUSTED_PROXIES": "127.0.0.0/8",
		"DOCKERHUB_AUTH_HOSTS": "auth.invalid",
	})
	id := auth.RealmID(&registry.Route{Name: "dockerhub"}, mustURL(t, "http://auth.invalid/token"))
	for _, tc := range []struct {
		name, path, proto, wantRealm string
	}{
		{"ping", "/v2/", "", "http://dhcr.test:5000/token/" + id},
		{"manifest 401 too", "/v2/x/manifests/latest", "", "http://dhcr.test:5000/token/" + id},
		{"trusted proxy says https", "/v2/", "https", "https://dhcr.test:5000/token/" + id},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.proto != "" {
				hdr.Set("X-Forwarded-Proto", tc.proto)
			}
			resp := call(t, relay, http.MethodGet, "dhcr.test:5000", tc.path, hdr)
			resp.Body.Close()
			got := resp.Header.Values("WWW-Authenticate")
			want := []string{`Basic realm="Registry"`,
				`Bearer realm="` + tc.wantRealm + `",service="svc",scope="repository:library/x:pull,push"`}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("challenges:\n got %q\nwant %q", got, want)
			}
		})
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestForwardedProtoIgnoredFromUntrustedPeer(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://auth.invalid/token",service="svc"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	relay, _ := startRelay(t, hubEnv(up.URL, "auth.invalid"))
	resp := call(t, relay, http.MethodGet, hubHost, "/v2/", http.Header{"X-Forwarded-Proto": {"https"}})
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="http://dhcr.test/token/`) {
		t.Errorf("untrusted X-Forwarded-Proto changed the realm: %s", got)
	}
}

func TestUpstreamErrorsBecomeOCIErrors(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.Contains(r.URL.Path, "html"):
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>bad gateway</html>")
		case strings.Contains(r.URL.Path, "slow"):
			time.Sleep(2 * time.Second)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"upstream says"}]}`)
		}
	})
	env := hubEnv(up.URL)
	env["RELAY_UPSTREAM_HEADER_TIMEOUT"] = "300ms"
	relay, _ := startRelay(t, env)
	wantOCIError(t, call(t, relay, "GET", hubHost, "/v2/html/manifests/latest", nil), http.StatusBadGateway, "UNAVAILABLE")
	if msg := wantOCIError(t, call(t, relay, "GET", hubHost, "/v2/x/manifests/latest", nil), http.StatusNotFound, "MANIFEST_UNKNOWN"); msg != "upstream says" {
		t.Errorf("upstream JSON error was not passed through: %q", msg)
	}
	wantOCIError(t, call(t, relay, "GET", hubHost, "/v2/slow/manifests/latest", nil), http.StatusGatewayTimeout, "UNAVAILABLE")

	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	relay2, _ := startRelay(t, hubEnv(down.URL))
	wantOCIError(t, call(t, relay2, "GET", hubHost, "/v2/x/manifests/latest", nil), http.StatusBadGateway, "UNAVAILABLE")
}

func TestRelayOwnAnswers(t *testing.T) {
	up, last := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	relay, _ := startRelay(t, hubEnv(up.URL))
	digest := "sha256:" + strings.Repeat("c", 64)
	for _, tc := range []struct {
		method, host, path string
		status             int
		code               string
	}{
		{"GET", "unknown.test", "/v2/", 404, "NAME_UNKNOWN"},
		{"GET", "dhcr.test.evil.test", "/v2/", 404, "NAME_UNKNOWN"},
		{"PUT", hubHost, "/v2/x/manifests/latest", 405, "UNSUPPORTED"},
		{"DELETE", hubHost, "/v2/x/blobs/" + digest, 405, "UNSUPPORTED"},
		{"POST", hubHost, "/v2/x/blobs/uploads/", 405, "UNSUPPORTED"},
		{"GET", hubHost, "/v2/x/blobs/uploads/abc", 405, "UNSUPPORTED"},
		{"GET", hubHost, "/v2/../x/manifests/latest", 400, "NAME_INVALID"},
		{"GET", hubHost, "/v2/%2e%2e/x/manifests/latest", 400, "NAME_INVALID"},
		{"GET", hubHost, "/v2/a%2Fb/manifests/latest", 400, "NAME_INVALID"},
		{"GET", hubHost, "/v2/UPPER/manifests/latest", 400, "NAME_INVALID"},
		{"GET", hubHost, "/v2/x/manifests/-bad", 400, "TAG_INVALID"},
		{"GET", hubHost, "/v2/x/blobs/sha256:abc", 400, "DIGEST_INVALID"},
		{"GET", hubHost, "/v2/x", 404, "NAME_UNKNOWN"},
		{"GET", hubHost, "/elsewhere", 404, "NAME_UNKNOWN"},
		{"DELETE", hubHost, "/", 405, "UNSUPPORTED"},
		{"PUT", hubHost, "/token", 405, "UNSUPPORTED"},
	} {
		wantOCIError(t, call(t, relay, tc.method, tc.host, tc.path, nil), tc.status, tc.code)
	}
	if r := last.Load(); r != nil {
		t.Errorf("a refused request reached the upstream: %s %s", r.Method, r.URL)
	}
}

func TestHostMatching(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	relay, _ := startRelay(t, hubEnv(up.URL))
	for _, host := range []string{"dhcr.test", "DHCR.Test", "dhcr.test.", "dhcr.test:8443", "dhcr.test.:80"} {
		resp := call(t, relay, http.MethodGet, host, "/v2/", nil)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200", host, resp.StatusCode)
		}
	}
}

func TestInfoPage(t *testing.T) {
	relay, _ := startRelay(t, map[string]string{"RELAY_BASE_DOMAIN": "example.com"})
	body := string(readAll(t, call(t, relay, "GET", "gcr.example.com", "/", nil)))
	if !strings.Contains(body, "gcr") || !strings.Contains(body, "https://gcr.io") {
		t.Errorf("info page does not name the route and upstream: %q", body)
	}
	body = string(readAll(t, call(t, relay, "GET", "dhcr.example.com", "/", http.Header{"Accept": {"application/json"}})))
	if !strings.Contains(body, `"upstream":"https://registry-1.docker.io"`) || !strings.Contains(body, "docker pull dhcr.example.com/library/nginx") {
		t.Errorf("JSON info page: %s", body)
	}
}

func TestClientDisconnectCancelsUpstream(t *testing.T) {
	cancelled := make(chan struct{})
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(cancelled)
	})
	relay, _ := startRelay(t, hubEnv(up.URL))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", relay.URL+"/v2/x/blobs/sha256:"+strings.Repeat("d", 64), nil)
	req.Host = hubHost
	resp, err := relay.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request still running after the client went away")
	}
}

func TestPaginationLinkStaysOnRelay(t *testing.T) {
	var upstreamURL string
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Link", `<`+upstreamURL+`/v2/library/x/tags/list?n=1&last=a>; rel="next"`)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"name":"library/x","tags":["a"]}`)
	})
	upstreamURL = up.URL
	relay, _ := startRelay(t, hubEnv(up.URL))
	resp := call(t, relay, "GET", hubHost, "/v2/x/tags/list?n=1", nil)
	resp.Body.Close()
	if got := resp.Header.Get("Link"); got != `</v2/library/x/tags/list?n=1&last=a>; rel="next"` {
		t.Errorf("Link = %q, want a relative link", got)
	}
}

func TestReferrersGetNoInventedDigest(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		fmt.Fprint(w, `{"schemaVersion":2,"manifests":[]}`)
	})
	relay, _ := startRelay(t, hubEnv(up.URL))
	resp := call(t, relay, "GET", hubHost, "/v2/x/referrers/sha256:"+strings.Repeat("a", 64), nil)
	resp.Body.Close()
	if d := resp.Header.Get("Docker-Content-Digest"); d != "" {
		t.Errorf("referrers answer got Docker-Content-Digest %s; the subject's digest is not the index's", d)
	}
}

func TestUpstreamDyingMidBodyIsNotAComplete(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		fmt.Fprint(w, strings.Repeat("x", 100))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // cut the connection
	})
	relay, a := startRelay(t, hubEnv(up.URL))
	resp := call(t, relay, "GET", hubHost, "/v2/x/blobs/sha256:"+strings.Repeat("b", 64), nil)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Fatalf("client read %d bytes without an error; a truncated blob must not look complete", len(body))
	}
	if !scrapeHas(t, a.Gatherer(), `relay_http_requests_total{code="aborted",kind="blob",method="GET",route="dockerhub"} 1`) {
		t.Error("the cut transfer was not counted as aborted")
	}
}

func TestUnparsableChallengePassedOn(t *testing.T) {
	const odd = `Bearer realm=https://auth.invalid/token`
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", odd)
		w.WriteHeader(http.StatusUnauthorized)
	})
	relay, _ := startRelay(t, hubEnv(up.URL))
	resp := call(t, relay, "GET", hubHost, "/v2/", nil)
	resp.Body.Close()
	if got := resp.Header.Get("WWW-Authenticate"); got != odd {
		t.Errorf("challenge %q, want the upstream's passed on", got)
	}
}

// TestTokenRequestReachesItsChallengesRealm: an upstream with two realms
// (nvcr.io challenges expired tokens elsewhere) must not have one client's
// token request sent to the realm of another client's challenge.
func TestTokenRequestReachesItsChallengesRealm(t *testing.T) {
	realmServer := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"token":%q}`, name)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	anon, refresh := realmServer("anon"), realmServer("refresh")
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		realm := anon.URL
		if r.Header.Get("Authorization") != "" {
			realm = refresh.URL
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`/token",service="svc"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	relay, _ := startRelay(t, hubEnv(up.URL, hostOf(anon.URL), hostOf(refresh.URL)))
	challengeRealm := func(hdr http.Header) string {
		resp := call(t, relay, "GET", hubHost, "/v2/x/manifests/latest", hdr)
		resp.Body.Close()
		realm := strings.TrimPrefix(resp.Header.Get("WWW-Authenticate"), `Bearer realm="http://`+hubHost)
		return realm[:strings.Index(realm, `"`)]
	}
	anonPath := challengeRealm(nil)
	refreshPath := challengeRealm(http.Header{"Authorization": {"Bearer expired"}})
	for path, want := range map[string]string{anonPath: "anon", refreshPath: "refresh"} {
		body := readAll(t, call(t, relay, "GET", hubHost, path+"?service=svc&scope=repository:x:pull", nil))
		if !strings.Contains(string(body), want) {
			t.Errorf("token via %s came from the wrong realm: %s", path, body)
		}
	}
}

func TestRateLimitVisibility(t *testing.T) {
	var limited atomic.Bool
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("RateLimit-Limit", "100;w=21600")
		w.Header().Set("RateLimit-Remaining", "97;w=21600")
		if limited.Load() {
			w.Header().Set("Retry-After", "60")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprint(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}`)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	relay, a := startRelay(t, hubEnv(up.URL))
	resp := call(t, relay, "HEAD", hubHost, "/v2/x/manifests/latest", nil)
	resp.Body.Close()
	if resp.Header.Get("RateLimit-Remaining") != "97;w=21600" || resp.Header.Get("RateLimit-Limit") == "" {
		t.Errorf("rate-limit headers not passed through: %v", resp.Header)
	}
	if !scrapeHas(t, a.Gatherer(), `relay_upstream_ratelimit_remaining{route="dockerhub"} 97`) {
		t.Error("remaining quota not exported")
	}
	limited.Store(true)
	resp = call(t, relay, "GET", hubHost, "/v2/x/manifests/latest", nil)
	if resp.Header.Get("Retry-After") != "60" {
		t.Errorf("Retry-After not passed through: %v", resp.Header)
	}
	wantOCIError(t, resp, http.StatusTooManyRequests, "TOOMANYREQUESTS")
}
