package relay_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
)

// serveApp serves a relay configured by environ the way the binary does
// (app.ServeListeners: MaxHeaderBytes, ReadHeaderTimeout, TLS off) and
// returns its registry address.
func serveApp(t *testing.T, environ map[string]string) (string, *app.App) {
	t.Helper()
	environ["RELAY_SHUTDOWN_DELAY"] = "0s"
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	a, err := app.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancelCause(context.Background())
	served := make(chan error, 1)
	go func() { served <- a.ServeListeners(ctx, mainLn, adminLn) }()
	t.Cleanup(func() {
		stop(app.ErrInterrupted)
		if err := <-served; err != nil {
			t.Errorf("ServeListeners: %v", err)
		}
		a.CloseIdleConnections()
	})
	return mainLn.Addr().String(), a
}

// rawExchange writes raw to a fresh connection and reads one response. A
// nil response means the server closed the connection without answering.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		return nil, nil // the server may hang up before it has read it all
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: method})
	if err != nil {
		return nil, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, body
}

// request renders a raw HTTP/1.1 request; host "" sends no Host header.
func request(method, target, host string, headers ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\n", method, target)
	if host != "-" {
		fmt.Fprintf(&b, "Host: %s\r\n", host)
	}
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// hostileCase is one request of the corpus and the answer it must get.
type hostileCase struct {
	name   string
	raw    string
	status int
	// code is the OCI error code of the body; "" when net/http refuses
	// the request itself, before the relay sees it (plain text).
	code string
	// upstream marks token requests, which may reach the route's own
	// upstream (realm discovery) and its known realm — nothing else.
	upstream bool
}

const digestA = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func get(path string) string { return request("GET", path, hubHost) }

func hostileCorpus(evil string) []hostileCase {
	long := strings.Repeat("a", 256)
	deep := strings.Repeat("a/", 200) + "a"
	return []hostileCase{
		// Path traversal and encodings: refused by the path parser.
		{"dot-dot", get("/v2/../x/manifests/latest"), 400, "NAME_INVALID", false},
		{"dot-dot to root", get("/v2/../../../../etc/passwd"), 404, "NAME_UNKNOWN", false},
		{"dot-dot in name", get("/v2/x/../y/manifests/latest"), 400, "NAME_INVALID", false},
		{"dot segment", get("/v2/./x/manifests/latest"), 400, "NAME_INVALID", false},
		{"dot-dot reference", get("/v2/x/manifests/.."), 400, "TAG_INVALID", false},
		{"dot-dot after reference", get("/v2/x/manifests/latest/../../../y"), 404, "NAME_UNKNOWN", false},
		{"encoded dot-dot", get("/v2/%2e%2e/x/manifests/latest"), 400, "NAME_INVALID", false},
		{"encoded dot-dot upper", get("/v2/%2E%2E/x/manifests/latest"), 400, "NAME_INVALID", false},
		{"encoded slash", get("/v2/a%2Fb/manifests/latest"), 400, "NAME_INVALID", false},
		{"encoded slash lower", get("/v2/a%2fb/manifests/latest"), 400, "NAME_INVALID", false},
		{"double-encoded dot-dot", get("/v2/%252e%252e/x/manifests/latest"), 400, "NAME_INVALID", false},
		{"double-encoded slash", get("/v2/a%252Fb/manifests/latest"), 400, "NAME_INVALID", false},
		{"encoded backslash", get("/v2/a%5Cb/manifests/latest"), 400, "NAME_INVALID", false},
		{"backslash", get(`/v2/a\..\b/manifests/latest`), 400, "NAME_INVALID", false},
		{"backslash traversal", get(`/v2/..\..\etc/manifests/latest`), 400, "NAME_INVALID", false},
		{"encoded NUL", get("/v2/x%00y/manifests/latest"), 400, "NAME_INVALID", false},
		{"encoded newline", get("/v2/x/manifests/latest%0d%0aX-Injected:%201"), 400, "NAME_INVALID", false},
		{"overlong UTF-8 dot", get("/v2/%c0%ae%c0%ae/x/manifests/latest"), 400, "NAME_INVALID", false},
		{"empty segment", get("/v2//x/manifests/latest"), 400, "NAME_INVALID", false},
		{"empty inner segment", get("/v2/x//y/manifests/latest"), 400, "NAME_INVALID", false},
		{"leading double slash", get("//v2/x/manifests/latest"), 404, "NAME_UNKNOWN", false},
		{"semicolon parameter", get("/v2/x;evil/manifests/latest"), 400, "NAME_INVALID", false},
		{"token traversal", get("/token/../../v2/x/manifests/latest"), 404, "NAME_UNKNOWN", false},
		// An id that is no realm's falls back to the route's known realm.
		{"token encoded traversal", get("/token/%2e%2e%2f%2e%2e%2fv2%2f"), 200, "", true},
		{"outside /v2", get("/etc/passwd"), 404, "NAME_UNKNOWN", false},
		{"metrics on the registry port", get("/metrics"), 404, "NAME_UNKNOWN", false},

		// Invalid names, tags and digests.
		{"upper-case name", get("/v2/UPPER/manifests/latest"), 400, "NAME_INVALID", false},
		{"name too long", get("/v2/" + long + "/manifests/latest"), 400, "NAME_INVALID", false},
		{"name too deep", get("/v2/" + deep + "/manifests/latest"), 400, "NAME_INVALID", false},
		{"name with trailing separator", get("/v2/x-/manifests/latest"), 400, "NAME_INVALID", false},
		{"name with unicode", get("/v2/ng%C4%B1nx/manifests/latest"), 400, "NAME_INVALID", false},
		{"tag with leading dash", get("/v2/x/manifests/-bad"), 400, "TAG_INVALID", false},
		{"tag too long", get("/v2/x/manifests/" + strings.Repeat("t", 129)), 400, "TAG_INVALID", false},
		{"tag with dot first", get("/v2/x/manifests/.hidden"), 400, "TAG_INVALID", false},
		{"short digest", get("/v2/x/blobs/sha256:abc"), 400, "DIGEST_INVALID", false},
		{"upper-case hex digest", get("/v2/x/blobs/sha256:" + strings.Repeat("A", 64)), 400, "DIGEST_INVALID", false},
		{"non-hex digest", get("/v2/x/blobs/sha256:" + strings.Repeat("z", 64)), 400, "DIGEST_INVALID", false},
		{"digest without algorithm", get("/v2/x/blobs/" + strings.Repeat("a", 64)), 400, "DIGEST_INVALID", false},
		{"overlong digest", get("/v2/x/blobs/x:" + strings.Repeat("a", 300)), 400, "DIGEST_INVALID", false},
		{"digest as manifest reference", get("/v2/x/manifests/sha256:abc"), 400, "DIGEST_INVALID", false},
		{"referrers by tag", get("/v2/x/referrers/latest"), 400, "DIGEST_INVALID", false},
		{"unknown endpoint", get("/v2/x/exploits/latest"), 404, "NAME_UNKNOWN", false},

		// Writes and other methods on a read-only relay.
		{"PUT manifest", request("PUT", "/v2/x/manifests/latest", hubHost, "Content-Length: 0"), 405, "UNSUPPORTED", false},
		{"DELETE blob", request("DELETE", "/v2/x/blobs/"+digestA, hubHost), 405, "UNSUPPORTED", false},
		{"POST upload", request("POST", "/v2/x/blobs/uploads/", hubHost, "Content-Length: 0"), 405, "UNSUPPORTED", false},
		{"PATCH upload", request("PATCH", "/v2/x/blobs/uploads/abc", hubHost, "Content-Length: 0"), 405, "UNSUPPORTED", false},
		{"GET upload", get("/v2/x/blobs/uploads/abc"), 405, "UNSUPPORTED", false},
		{"OPTIONS", request("OPTIONS", "/v2/", hubHost), 405, "UNSUPPORTED", false},
		{"TRACE", request("TRACE", "/v2/", hubHost), 405, "UNSUPPORTED", false},
		// chi answers methods it does not know with a bare 405 (no body)
		// until relay.go sets r.MethodNotAllowed to an OCI error.
		{"PROPFIND", request("PROPFIND", "/v2/", hubHost), 405, "UNSUPPORTED", false},

		// Open-proxy probes.
		{"absolute URI to another host", request("GET", "http://evil.example/v2/", "evil.example"), 404, "NAME_UNKNOWN", false},
		{"absolute URI, served Host header", request("GET", "http://evil.example/v2/x/manifests/latest", hubHost), 404, "NAME_UNKNOWN", false},
		{"absolute URI to the evil server", request("GET", evil+"/v2/", hubHost), 404, "NAME_UNKNOWN", false},
		{"CONNECT to another host", request("CONNECT", "evil.example:443", "evil.example:443"), 404, "NAME_UNKNOWN", false},
		{"CONNECT to the served host", request("CONNECT", hubHost+":443", hubHost+":443"), 405, "UNSUPPORTED", false},
		{"CONNECT to the evil server", request("CONNECT", strings.TrimPrefix(evil, "http://"), hubHost), 404, "NAME_UNKNOWN", false},

		// Crafted Host headers: only exact access domains route.
		{"suffix look-alike", request("GET", "/v2/", "dhcr.test.evil.test"), 404, "NAME_UNKNOWN", false},
		{"prefix look-alike", request("GET", "/v2/", "evildhcr.test"), 404, "NAME_UNKNOWN", false},
		{"other host", request("GET", "/v2/", "evil.test"), 404, "NAME_UNKNOWN", false},
		{"punycode look-alike", request("GET", "/v2/", "xn--dhcr-9qa.test"), 404, "NAME_UNKNOWN", false},
		{"unicode look-alike", request("GET", "/v2/", "dhcr.t\u0435st"), 400, "", false},
		{"userinfo", request("GET", "/v2/", "dhcr.test:80@evil"), 400, "", false},
		{"empty Host", request("GET", "/v2/", ""), 404, "NAME_UNKNOWN", false},
		{"missing Host", request("GET", "/v2/", "-"), 400, "", false},
		{"two Host headers", request("GET", "/v2/", hubHost, "Host: evil.test"), 400, "", false},
		{"Host with path", request("GET", "/v2/", "dhcr.test/x"), 400, "", false},
		{"X-Forwarded-Host ignored", request("GET", "/v2/", "evil.test", "X-Forwarded-Host: "+hubHost), 404, "NAME_UNKNOWN", false},
		{"Forwarded host ignored", request("GET", "/v2/", "evil.test", "Forwarded: host="+hubHost), 404, "NAME_UNKNOWN", false},
		{"Host with port mismatch only", request("GET", "/v2/x/manifests/-bad", "dhcr.test:1"), 400, "TAG_INVALID", false},

		// Token requests with forged parameters reach only the known realm.
		{"forged realm parameter", get("/token?realm=" + evil + "/&service=x&scope=repository:x:pull"), 200, "", true},
		{"forged upstream parameter", get("/token?upstream=" + evil + "&scope=repository:x:pull"), 200, "", true},
		{"unknown realm id", get("/token/0123456789abcdef?scope=repository:x:pull"), 200, "", true},
		{"realm id that is a URL", get("/token/" + strings.ReplaceAll(evil, "/", "%2F") + "?scope=repository:x:pull"), 200, "", true},
		{"forged realm in a POST", request("POST", "/token", hubHost,
			"Content-Type: application/x-www-form-urlencoded", fmt.Sprintf("Content-Length: %d", len("realm="+evil+"&grant_type=password"))) +
			"realm=" + evil + "&grant_type=password", 200, "", true},
		{"token DELETE", request("DELETE", "/token", hubHost), 405, "UNSUPPORTED", false},

		// Over-long headers: MaxHeaderBytes is 64 KiB.
		{"over-long header", request("GET", "/v2/", hubHost, "X-Pad: "+strings.Repeat("a", 70<<10)), 431, "", false},
		{"many headers", request("GET", "/v2/", hubHost, strings.Repeat("X-A: b\r\n", 10<<10)+"X-End: 1"), 431, "", false},
		{"over-long request line", get("/v2/" + strings.Repeat("a", 70<<10) + "/manifests/latest"), 431, "", false},
	}
}

// TestHostileCorpus sends each request of the corpus, over raw TCP to a
// relay served as the binary serves it, and checks the answer: a clear
// status, an OCI error body wherever the relay itself answers, and no
// upstream request (token requests: only the route's own upstream and
// realm, never the address the client supplied).
func TestHostileCorpus(t *testing.T) {
	var evilHits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		evilHits.Add(1)
		t.Errorf("the relay contacted a client-supplied address: %s %s", r.Method, r.URL)
	}))
	defer evil.Close()
	realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/token" {
			t.Errorf("realm request to %s", r.URL.Path)
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"token":"t"}`)
	}))
	defer realm.Close()
	var upstreamHits atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamHits.Add(1)
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm.URL+`/token",service="up"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	defer up.Close()
	addr, _ := serveApp(t, hubEnv(up.URL, hostOf(realm.URL)))

	corpus := hostileCorpus(evil.URL)
	for _, tc := range corpus {
		t.Run(tc.name, func(t *testing.T) {
			before := upstreamHits.Load()
			resp, body := rawExchange(t, addr, tc.raw)
			if resp == nil {
				t.Fatalf("connection closed without an answer")
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %.200q)", resp.StatusCode, tc.status, body)
			}
			if tc.code != "" {
				var e ociErrors
				if err := json.Unmarshal(body, &e); err != nil || len(e.Errors) == 0 {
					t.Fatalf("body is not an OCI error envelope: %.200q", body)
				}
				if e.Errors[0].Code != tc.code {
					t.Fatalf("code %s, want %s (%s)", e.Errors[0].Code, tc.code, e.Errors[0].Message)
				}
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type %q", ct)
				}
			}
			if tc.upstream && string(body) != `{"token":"t"}` {
				t.Errorf("token answer %q, want the known realm's", body)
			}
			if !tc.upstream && upstreamHits.Load() != before {
				t.Errorf("the request reached the upstream")
			}
		})
	}
	if evilHits.Load() != 0 {
		t.Errorf("%d requests reached a client-supplied address", evilHits.Load())
	}
	t.Logf("hostile corpus: %d requests", len(corpus))
}
