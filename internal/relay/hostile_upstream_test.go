package relay_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/registry"
)

// hostileUpstream answers each repository name with a different kind of
// broken or malicious response.
func hostileUpstream(t *testing.T, storage string) *httptest.Server {
	t.Helper()
	challenge := func(w http.ResponseWriter, values ...string) {
		for _, v := range values {
			w.Header().Add("WWW-Authenticate", v)
		}
		w.WriteHeader(http.StatusUnauthorized)
	}
	redirect := func(w http.ResponseWriter, loc string) {
		w.Header().Set("Location", loc)
		w.WriteHeader(http.StatusFound)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// "/v2/library/<case>/blobs/…": Docker Hub's library/ is added.
		name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/library/"), "/")
		switch name {
		case "hugerealm":
			challenge(w, `Bearer realm="https://auth.example/`+strings.Repeat("a", 60<<10)+`",service="x"`)
		case "malformed":
			challenge(w, `Bearer realm="unterminated, service=`)
		case "manychallenges":
			challenge(w, strings.Split(strings.Repeat(`Bearer realm="https://a.example/t",service="s";`, 100), ";")...)
		case "filerealm":
			challenge(w, `Bearer realm="file:///etc/passwd",service="x"`)
		case "hugeheaders":
			for i := range 100 {
				w.Header().Set(fmt.Sprintf("X-Pad-%d", i), strings.Repeat("p", 1<<10))
			}
		case "hugeheader":
			w.Header().Set("X-Pad", strings.Repeat("p", 70<<10))
		case "loop":
			redirect(w, r.URL.Path)
		case "filescheme":
			redirect(w, "file:///etc/passwd")
		case "gopher":
			redirect(w, "gopher://127.0.0.1:70/_GET")
		case "nohost":
			redirect(w, "http:///nohost")
		case "storage":
			redirect(w, storage+"/blob?sig=1")
		case "html500":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, "<html>"+strings.Repeat("x", 100<<10)+"</html>")
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(up.Close)
	return up
}

func TestHostileUpstreams(t *testing.T) {
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "blob") }))
	defer storage.Close()
	up := hostileUpstream(t, storage.URL)
	addr, _ := serveApp(t, hubEnv(up.URL))
	for _, tc := range []struct {
		name   string
		status int
		code   string
		check  func(t *testing.T, resp *http.Response, body []byte)
	}{
		// Past the parser's 16 KiB bound a challenge is passed on as it
		// came, as an unparsable one is: the relay learns no realm from it.
		{"hugerealm", 401, "UNAUTHORIZED", nil},
		{"malformed", 401, "UNAUTHORIZED", nil},
		{"manychallenges", 401, "UNAUTHORIZED", nil},
		{"filerealm", 401, "UNAUTHORIZED", func(t *testing.T, resp *http.Response, _ []byte) {
			if c := resp.Header.Get("WWW-Authenticate"); strings.Contains(c, "file:") {
				t.Errorf("a file: realm reached the client: %s", c)
			}
		}},
		{"hugeheaders", 502, "UNAVAILABLE", nil},
		{"hugeheader", 502, "UNAVAILABLE", nil},
		{"loop", 502, "UNAVAILABLE", nil},
		{"filescheme", 502, "UNAVAILABLE", nil},
		{"gopher", 502, "UNAVAILABLE", nil},
		{"nohost", 502, "UNAVAILABLE", nil},
		{"html500", 500, "UNKNOWN", nil},
		// The exception: this route's upstream is on loopback, so its
		// redirects may stay there.
		{"storage", 200, "", func(t *testing.T, _ *http.Response, body []byte) {
			if string(body) != "blob" {
				t.Errorf("body %q", body)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, get("/v2/"+tc.name+"/blobs/"+digestA))
			if resp == nil || resp.StatusCode != tc.status {
				t.Fatalf("got %v (body %.200q), want %d", resp, body, tc.status)
			}
			if tc.code != "" && !strings.Contains(string(body), `"code":"`+tc.code+`"`) {
				t.Fatalf("body %.300q, want OCI code %s", body, tc.code)
			}
			if tc.check != nil {
				tc.check(t, resp, body)
			}
		})
	}
}

// TestPublicRouteRedirectToPrivateRefused is the end-to-end view: a route
// whose upstream is public, redirecting to the relay's own network, gets a
// 502 naming the reason, and the target is never contacted.
func TestPublicRouteRedirectToPrivateRefused(t *testing.T) {
	target, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect reached %s", r.URL)
	})
	route := &registry.Route{Name: "public", AccessDomain: "public.test", Upstream: &url.URL{Scheme: "http", Host: "registry.example"}}
	for _, location := range []string{
		target.URL + "/blob",
		strings.Replace(target.URL, "127.0.0.1", "localhost", 1) + "/blob",
		"http://169.254.169.254/latest/meta-data/",
	} {
		srv := publicRelay(t, route, &fakePublic{answer: redirectTo(location)}, false)
		msg := wantOCIError(t, call(t, srv, "GET", "public.test", "/v2/x/blobs/"+digestA, nil), http.StatusBadGateway, "UNAVAILABLE")
		if !strings.Contains(msg, "not a public address") {
			t.Errorf("redirect to %s: message %q does not name the reason", location, msg)
		}
	}
}
