package auth_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// seen is what the fake token server received.
type seen struct {
	Method, ContentType, Authorization string
	Query, Form                        url.Values
}

// fixture is a fake upstream whose /v2/ challenges point at a fake token
// server, and a token proxy wired to both.
type fixture struct {
	route    *registry.Route
	proxy    *auth.TokenProxy
	pings    atomic.Int32
	mu       sync.Mutex
	requests []seen
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// newFixture starts the servers. challenge renders the upstream's
// WWW-Authenticate from the token server's URL ("" for no challenge).
func newFixture(t *testing.T, challenge func(tokenURL string) string, token http.HandlerFunc) *fixture {
	t.Helper()
	fx := &fixture{}
	tokenSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		fx.mu.Lock()
		fx.requests = append(fx.requests, seen{r.Method, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), r.URL.Query(), form})
		fx.mu.Unlock()
		token(w, r)
	}))
	t.Cleanup(tokenSrv.Close)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/" {
			t.Errorf("upstream got %s %s, want only the /v2/ ping", r.Method, r.URL)
		}
		fx.pings.Add(1)
		if h := challenge(tokenSrv.URL); h != "" {
			w.Header().Set("WWW-Authenticate", h)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(upstream.Close)

	up, _ := url.Parse(upstream.URL)
	fx.route = &registry.Route{Name: "dockerhub", Upstream: up, UpstreamOverridden: true, Patch: registry.DockerHubRepository,
		AuthHosts: []string{tokenSrv.Listener.Addr().String()}}
	client := &http.Client{CheckRedirect: noRedirects}
	fx.proxy = &auth.TokenProxy{Realms: auth.NewRealms(client), Log: slog.New(slog.DiscardHandler),
		Transport: func(*registry.Route) http.RoundTripper { return http.DefaultTransport }}
	return fx
}

func bearerChallenge(tokenURL string) string {
	return `Bearer realm="` + tokenURL + `/token",service="svc"`
}

func jsonToken(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, `{"token":"t0k3n","expires_in":300}`)
}

func (fx *fixture) serve(r *http.Request) (*httptest.ResponseRecorder, int) {
	rec := httptest.NewRecorder()
	tr, oerr := auth.ReadTokenRequest(rec, r)
	if oerr != nil {
		oerr.ServeHTTP(rec, r)
		return rec, 0
	}
	status, _ := fx.proxy.Serve(rec, r, tr, auth.Target{Route: fx.route})
	return rec, status
}

func (fx *fixture) count() int {
	fx.mu.Lock()
	defer fx.mu.Unlock()
	return len(fx.requests)
}

func (fx *fixture) only(t *testing.T) seen {
	t.Helper()
	fx.mu.Lock()
	defer fx.mu.Unlock()
	if len(fx.requests) != 1 {
		t.Fatalf("token server got %d requests, want 1", len(fx.requests))
	}
	return fx.requests[0]
}

// ociError decodes the relay's error envelope, failing unless it is one.
func ociError(t *testing.T, rec *httptest.ResponseRecorder) oci.ErrorCode {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("Content-Type = %q, want JSON", ct)
	}
	var env struct{ Errors []oci.Error }
	if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil || len(env.Errors) != 1 {
		t.Fatalf("body %q is not an OCI error envelope: %v", rec.Body, err)
	}
	return env.Errors[0].Code
}

func TestTokenProxyGETPatchesEveryScope(t *testing.T) {
	fx := newFixture(t, bearerChallenge, jsonToken)
	r := httptest.NewRequest(http.MethodGet,
		"/token?service=svc&scope=repository:nginx:pull&scope=repository:bitnami/redis:pull&scope=repository:alpine:pull,push&account=me", nil)
	r.SetBasicAuth("me", "secret")
	rec, status := fx.serve(r)

	if rec.Code != http.StatusOK || status != http.StatusOK {
		t.Fatalf("status = %d (returned %d), want 200; body %s", rec.Code, status, rec.Body)
	}
	if got := rec.Body.String(); got != `{"token":"t0k3n","expires_in":300}` {
		t.Errorf("body = %q, want the token server's JSON unchanged", got)
	}
	got := fx.only(t)
	if got.Method != http.MethodGet {
		t.Errorf("method = %s", got.Method)
	}
	wantScopes := []string{"repository:library/nginx:pull", "repository:bitnami/redis:pull", "repository:library/alpine:pull,push"}
	if !slices.Equal(got.Query["scope"], wantScopes) {
		t.Errorf("scopes = %q, want %q", got.Query["scope"], wantScopes)
	}
	if got.Query.Get("service") != "svc" || got.Query.Get("account") != "me" {
		t.Errorf("query = %v, want service and account kept", got.Query)
	}
	if got.Authorization != r.Header.Get("Authorization") {
		t.Errorf("Authorization = %q, want the client's Basic credentials", got.Authorization)
	}
}

func TestTokenProxyPOSTForm(t *testing.T) {
	fx := newFixture(t, bearerChallenge, jsonToken)
	form := url.Values{
		"grant_type": {"password"}, "username": {"me"}, "password": {"secret"}, "client_id": {"containerd"},
		"service": {"svc"}, "scope": {"repository:nginx:pull repository:bitnami/redis:pull,push"},
	}
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	rec, _ := fx.serve(r)

	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d, body %s", rec.Code, rec.Body)
	}
	got := fx.only(t)
	if got.Method != http.MethodPost || got.ContentType != "application/x-www-form-urlencoded" {
		t.Errorf("request = %s %q, want a form POST", got.Method, got.ContentType)
	}
	if want := "repository:library/nginx:pull repository:bitnami/redis:pull,push"; got.Form.Get("scope") != want {
		t.Errorf("scope = %q, want %q", got.Form.Get("scope"), want)
	}
	for _, k := range []string{"grant_type", "username", "password", "client_id", "service"} {
		if got.Form.Get(k) != form.Get(k) {
			t.Errorf("form %s = %q, want %q", k, got.Form.Get(k), form.Get(k))
		}
	}
}

func TestTokenProxyRefusesBadRequests(t *testing.T) {
	fx := newFixture(t, bearerChallenge, jsonToken)
	tests := []struct {
		name       string
		method, ct string
		body       string
		wantStatus int
	}{
		{"PUT", http.MethodPut, "", "", http.StatusMethodNotAllowed},
		{"POST JSON", http.MethodPost, "application/json", `{}`, http.StatusUnsupportedMediaType},
		{"POST oversized form", http.MethodPost, "application/x-www-form-urlencoded", "a=" + strings.Repeat("b", 65<<10), http.StatusRequestEntityTooLarge},
		{"POST malformed form", http.MethodPost, "application/x-www-form-urlencoded", "a=%zz", http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(tt.method, "/token", strings.NewReader(tt.body))
			r.Header.Set("Content-Type", tt.ct)
			rec, _ := fx.serve(r)
			if rec.Code != tt.wantStatus {
				t.Errorf("status = %d, want %d", rec.Code, tt.wantStatus)
			}
			ociError(t, rec)
		})
	}
	if n := fx.count(); n != 0 {
		t.Errorf("token server got %d requests for refused client requests", n)
	}
}

func TestTokenProxyErrorAnswers(t *testing.T) {
	tests := []struct {
		name       string
		token      http.HandlerFunc
		wantStatus int
		wantCode   oci.ErrorCode // "" when the body must pass through
		wantBody   string
	}{
		{"html 404 becomes OCI error", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "<html>not found</html>")
		}, http.StatusNotFound, oci.CodeNameUnknown, ""},
		{"plain 503 becomes OCI error", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
		}, http.StatusServiceUnavailable, oci.CodeUnavailable, ""},
		{"JSON 401 passes through", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"details":"incorrect username or password"}`)
		}, http.StatusUnauthorized, "", `{"details":"incorrect username or password"}`},
		{"JSON 405 passes through for containerd fallback", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.WriteHeader(http.StatusMethodNotAllowed)
			_, _ = io.WriteString(w, `{"errors":[{"code":"UNSUPPORTED","message":"use GET"}]}`)
		}, http.StatusMethodNotAllowed, "", `{"errors":[{"code":"UNSUPPORTED","message":"use GET"}]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, bearerChallenge, tt.token)
			rec, status := fx.serve(httptest.NewRequest(http.MethodGet, "/token?scope=repository:nginx:pull", nil))
			if rec.Code != tt.wantStatus || status != tt.wantStatus {
				t.Fatalf("status = %d (returned %d), want %d", rec.Code, status, tt.wantStatus)
			}
			if tt.wantCode != "" {
				if code := ociError(t, rec); code != tt.wantCode {
					t.Errorf("code = %s, want %s", code, tt.wantCode)
				}
				return
			}
			if rec.Body.String() != tt.wantBody {
				t.Errorf("body = %q, want %q unchanged", rec.Body, tt.wantBody)
			}
		})
	}
}

func TestTokenProxyDiscoversRealmOnce(t *testing.T) {
	fx := newFixture(t, bearerChallenge, jsonToken)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			rec, _ := fx.serve(httptest.NewRequest(http.MethodGet, "/token?scope=repository:nginx:pull", nil))
			if rec.Code != http.StatusOK {
				t.Errorf("status = %d, body %s", rec.Code, rec.Body)
			}
		})
	}
	wg.Wait()
	fx.serve(httptest.NewRequest(http.MethodGet, "/token", nil))
	if n := fx.pings.Load(); n != 1 {
		t.Errorf("upstream pinged %d times, want 1", n)
	}
	if n := fx.count(); n != 9 {
		t.Errorf("token server got %d requests, want 9", n)
	}
}

func TestTokenProxyDiscoveryFailures(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	tests := []struct {
		name       string
		challenge  func(string) string
		wantStatus int
		wantCode   oci.ErrorCode
	}{
		{"anonymous upstream", func(string) string { return "" }, http.StatusNotFound, oci.CodeUnsupported},
		{"basic only", func(string) string { return `Basic realm="registry"` }, http.StatusNotFound, oci.CodeUnsupported},
		{"unparsable challenge", func(string) string { return `Bearer realm="x` }, http.StatusNotFound, oci.CodeUnsupported},
		{"realm host not allowed", func(string) string { return `Bearer realm="http://auth.invalid/token"` }, http.StatusBadGateway, oci.CodeUnavailable},
		{"realm with userinfo", func(string) string { return `Bearer realm="http://u:p@auth.invalid/token"` }, http.StatusBadGateway, oci.CodeUnavailable},
		{"token server unreachable", func(string) string { return bearerChallenge(closed.URL) }, http.StatusBadGateway, oci.CodeUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := newFixture(t, tt.challenge, func(w http.ResponseWriter, _ *http.Request) {
				t.Error("token server must not be contacted")
			})
			fx.route.AuthHosts = append(fx.route.AuthHosts, closed.Listener.Addr().String())
			rec, status := fx.serve(httptest.NewRequest(http.MethodGet, "/token?scope=repository:nginx:pull", nil))
			if rec.Code != tt.wantStatus || status != 0 {
				t.Fatalf("status = %d (returned %d), want %d (0); body %s", rec.Code, status, tt.wantStatus, rec.Body)
			}
			if code := ociError(t, rec); code != tt.wantCode {
				t.Errorf("code = %s, want %s", code, tt.wantCode)
			}
		})
	}
}

func TestTokenProxyUpstreamUnreachable(t *testing.T) {
	fx := newFixture(t, bearerChallenge, jsonToken)
	fx.route.Upstream, _ = url.Parse("http://127.0.0.1:1")
	rec, _ := fx.serve(httptest.NewRequest(http.MethodGet, "/token", nil))
	if rec.Code != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", rec.Code)
	}
	ociError(t, rec)
}

func TestRealmsLearn(t *testing.T) {
	fx := newFixture(t, func(string) string { t.Error("no ping expected"); return "" }, jsonToken)
	rs := auth.NewRealms(http.DefaultClient)
	fx.route.AuthHosts = append(fx.route.AuthHosts, "tokens.example", "refresh.example")
	if _, err := rs.Learn(fx.route, "ftp://x/token"); err == nil {
		t.Fatal("Learn accepted an ftp realm")
	}
	if _, err := rs.Learn(fx.route, "http://elsewhere.example/token"); err == nil {
		t.Fatal("Learn accepted a realm host the route does not list")
	}
	anonID, err := rs.Learn(fx.route, "http://tokens.example/token")
	if err != nil {
		t.Fatal(err)
	}
	refreshID, err := rs.Learn(fx.route, "http://refresh.example/token?x=1")
	if err != nil {
		t.Fatal(err)
	}
	if anonID == refreshID {
		t.Fatal("two realms share an id")
	}
	// Each client's id keeps naming the realm of its own challenge, whatever
	// other clients were challenged with since (nvcr.io's two realms).
	for id, want := range map[string]string{
		anonID:    "http://tokens.example/token",
		refreshID: "http://refresh.example/token?x=1",
		"":        "http://refresh.example/token?x=1", // no id: the latest
		"unknown": "http://refresh.example/token?x=1",
	} {
		u, err := rs.Lookup(t.Context(), fx.route, id)
		if err != nil || u.String() != want {
			t.Errorf("Lookup(%q) = %v, %v; want %s without a ping", id, u, err, want)
		}
	}
}

func TestRealmsRememberNoTokenAuth(t *testing.T) {
	fx := newFixture(t, func(string) string { return "" }, jsonToken)
	for range 3 {
		if rec, _ := fx.serve(httptest.NewRequest(http.MethodGet, "/token", nil)); rec.Code != http.StatusNotFound {
			t.Fatalf("status = %d, want 404", rec.Code)
		}
	}
	if n := fx.pings.Load(); n != 1 {
		t.Errorf("upstream pinged %d times, want 1 (negative result cached)", n)
	}
}
