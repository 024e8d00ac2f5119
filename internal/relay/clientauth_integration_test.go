package relay_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/config"
)

const k8sHost = "k8s.test"

// tokenUpstream is a registry with token auth on its own host: its token
// endpoint hands out one fixed token, and registry requests need it.
type tokenUpstream struct {
	*httptest.Server
	token string
	// seen counts registry requests that carried a bearer token, by token.
	mu   sync.Mutex
	seen map[string]int
}

func newTokenUpstream(t *testing.T, token string) *tokenUpstream {
	t.Helper()
	u := &tokenUpstream{token: token, seen: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *tokenUpstream) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/token" {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"token": u.token, "expires_in": 300})
		return
	}
	got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if got != "" {
		u.mu.Lock()
		u.seen[got]++
		u.mu.Unlock()
	}
	if got != u.token {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+u.URL+`/token",service="fake"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	w.Header().Set("Docker-Content-Digest", "sha256:"+strings.Repeat("b", 64))
	w.WriteHeader(http.StatusOK)
}

func (u *tokenUpstream) saw(token string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[token]
}

// clock is a settable time for relay-token expiry and htpasswd checks.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}
func (c *clock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// accountsRelay is a relay with relay accounts in front of two token-auth
// upstreams (dockerhub and k8s routes), on a clock the test moves.
type accountsRelay struct {
	relay    *httptest.Server
	htpasswd string
	clock    *clock
	hub, k8s *tokenUpstream
}

func newAccountsRelay(t *testing.T, users map[string]string, extraEnv map[string]string) *accountsRelay {
	t.Helper()
	ar := &accountsRelay{clock: newClock(), htpasswd: filepath.Join(t.TempDir(), "htpasswd")}
	ar.hub = newTokenUpstream(t, "hub-upstream-token-"+strings.Repeat("h", 40))
	ar.k8s = newTokenUpstream(t, "k8s-upstream-token-"+strings.Repeat("k", 40))
	ar.writeUsers(t, users, time.Now())
	env := map[string]string{
		"RELAY_BASE_DOMAIN": "test", "RELAY_HTPASSWD_FILE": ar.htpasswd,
		"DOCKERHUB_UPSTREAM": ar.hub.URL, "K8S_UPSTREAM": ar.k8s.URL,
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	cfg, err := config.Load(env)
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	cfg.Clock = ar.clock.now
	a, err := app.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ar.relay = httptest.NewServer(a.Handler())
	t.Cleanup(func() {
		ar.relay.Close()
		a.CloseIdleConnections()
	})
	return ar
}

func (ar *accountsRelay) writeUsers(t *testing.T, users map[string]string, mod time.Time) {
	t.Helper()
	var b strings.Builder
	for user, password := range users {
		hash, _ := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		b.WriteString(user + ":" + string(hash) + "\n")
	}
	if err := os.WriteFile(ar.htpasswd, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(ar.htpasswd, mod, mod); err != nil {
		t.Fatal(err)
	}
}

// send is one request to the relay as if addressed to host, bounded by ctx.
func send(ctx context.Context, t *testing.T, srv *httptest.Server, host, path string, hdr http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", host, path, err)
	}
	return resp
}

// login runs the registry token flow for path on host with relay
// credentials and returns the relay token.
func (ar *accountsRelay) login(ctx context.Context, t *testing.T, host, path, user, password string) string {
	t.Helper()
	resp := send(ctx, t, ar.relay, host, path, nil)
	readAll(t, resp)
	cs, err := auth.ParseChallenges(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || err != nil || len(cs) == 0 {
		t.Fatalf("%s%s without a token: %d %q", host, path, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	realm := strings.TrimPrefix(cs[0].Get("realm"), "http://"+host)
	tokenPath := realm + "?service=" + cs[0].Get("service") + "&scope=" + cs[0].Get("scope")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
	resp = send(ctx, t, ar.relay, host, tokenPath, http.Header{"Authorization": {basic}})
	var body struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil || body.Token == "" {
		t.Fatalf("token via %s: %d %v", tokenPath, resp.StatusCode, err)
	}
	return body.Token
}

// pullStatus is the status of a manifest request with a relay token; on
// a 401 it also checks that the challenge is the relay's own for route.
func (ar *accountsRelay) pullStatus(ctx context.Context, t *testing.T, host, path, token, route string) int {
	t.Helper()
	resp := send(ctx, t, ar.relay, host, path, http.Header{"Authorization": {"Bearer " + token}})
	readAll(t, resp)
	if resp.StatusCode == http.StatusUnauthorized {
		challenge := resp.Header.Get("WWW-Authenticate")
		if !strings.Contains(challenge, `realm="http://`+host+`/token/`+route+`.`) || !strings.Contains(challenge, auth.RelayService) {
			t.Errorf("%s%s: 401 without the relay's challenge: %q", host, path, challenge)
		}
	}
	return resp.StatusCode
}

const hubManifest, k8sManifest = "/v2/nginx/manifests/1", "/v2/pause/manifests/3.10"

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRelayTokenRouteBinding: a relay token works on the route it was
// issued for and is refused, with the relay's challenge, on any other;
// the other route's upstream never sees the token inside.
func TestRelayTokenRouteBinding(t *testing.T) {
	ctx := testContext(t)
	ar := newAccountsRelay(t, map[string]string{"carol": "relay-pass"}, nil)
	hubTok := ar.login(ctx, t, hubHost, hubManifest, "carol", "relay-pass")
	k8sTok := ar.login(ctx, t, k8sHost, k8sManifest, "carol", "relay-pass")
	for _, tc := range []struct {
		name, host, path, token, route string
		want                           int
	}{
		{"hub token on hub", hubHost, hubManifest, hubTok, "dockerhub", http.StatusOK},
		{"k8s token on k8s", k8sHost, k8sManifest, k8sTok, "k8s", http.StatusOK},
		{"hub token on k8s", k8sHost, k8sManifest, hubTok, "k8s", http.StatusUnauthorized},
		{"k8s token on hub", hubHost, hubManifest, k8sTok, "dockerhub", http.StatusUnauthorized},
		{"upstream token on hub", hubHost, hubManifest, ar.hub.token, "dockerhub", http.StatusUnauthorized},
	} {
		if got := ar.pullStatus(ctx, t, tc.host, tc.path, tc.token, tc.route); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	if ar.k8s.saw(ar.hub.token) != 0 || ar.hub.saw(ar.k8s.token) != 0 {
		t.Error("an upstream saw another route's upstream token")
	}
	if ar.hub.saw(ar.hub.token) == 0 {
		t.Error("the hub upstream never got its token: the relay did not unwrap")
	}
}

// TestRelayTokenExpiry: a relay token is refused once its TTL has passed.
func TestRelayTokenExpiry(t *testing.T) {
	ctx := testContext(t)
	ar := newAccountsRelay(t, map[string]string{"carol": "relay-pass"}, map[string]string{"RELAY_CLIENT_TOKEN_TTL": "1m"})
	tok := ar.login(ctx, t, hubHost, hubManifest, "carol", "relay-pass")
	ar.clock.advance(time.Minute - time.Second)
	if got := ar.pullStatus(ctx, t, hubHost, hubManifest, tok, "dockerhub"); got != http.StatusOK {
		t.Fatalf("before expiry: %d", got)
	}
	ar.clock.advance(time.Second)
	if got := ar.pullStatus(ctx, t, hubHost, hubManifest, tok, "dockerhub"); got != http.StatusUnauthorized {
		t.Fatalf("after RELAY_CLIENT_TOKEN_TTL: %d, want 401", got)
	}
}

// TestRelayTokenOfRemovedUser: once the htpasswd file drops a user, that
// user's unexpired relay tokens stop working and the login fails; the
// others keep theirs.
func TestRelayTokenOfRemovedUser(t *testing.T) {
	ctx := testContext(t)
	ar := newAccountsRelay(t, map[string]string{"carol": "c-pass", "dave": "d-pass"}, nil)
	carol := ar.login(ctx, t, hubHost, hubManifest, "carol", "c-pass")
	dave := ar.login(ctx, t, hubHost, hubManifest, "dave", "d-pass")
	ar.writeUsers(t, map[string]string{"carol": "c-pass"}, time.Now().Add(time.Minute))
	ar.clock.advance(6 * time.Second) // past the file's check interval
	if got := ar.pullStatus(ctx, t, hubHost, hubManifest, dave, "dockerhub"); got != http.StatusUnauthorized {
		t.Errorf("removed user's token: %d, want 401", got)
	}
	if got := ar.pullStatus(ctx, t, hubHost, hubManifest, carol, "dockerhub"); got != http.StatusOK {
		t.Errorf("remaining user's token: %d, want 200", got)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("dave:d-pass"))
	resp := send(ctx, t, ar.relay, hubHost, "/token/dockerhub.?service="+auth.RelayService, http.Header{"Authorization": {basic}})
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("removed user's login: %d, want 401", resp.StatusCode)
	}
}

// TestRelayTokenHidesUpstreamToken: the token the relay hands out shows
// the upstream token neither in clear nor base64-encoded.
func TestRelayTokenHidesUpstreamToken(t *testing.T) {
	ctx := testContext(t)
	ar := newAccountsRelay(t, map[string]string{"carol": "relay-pass"}, nil)
	tok := ar.login(ctx, t, hubHost, hubManifest, "carol", "relay-pass")
	if got := ar.pullStatus(ctx, t, hubHost, hubManifest, tok, "dockerhub"); got != http.StatusOK {
		t.Fatalf("with the relay token: %d", got)
	}
	probe := ar.hub.token[len(ar.hub.token)/4 : len(ar.hub.token)*3/4]
	if strings.Contains(tok, probe) {
		t.Fatal("the relay token contains the upstream token in clear")
	}
	for _, part := range strings.Split(tok, ".") {
		for off := range 4 {
			if off >= len(part) {
				break
			}
			s := part[off:]
			s = s[:len(s)/4*4]
			for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
				if dec, err := enc.DecodeString(s); err == nil && strings.Contains(string(dec), probe[:len(probe)/2]) {
					t.Fatal("the relay token contains the upstream token base64-encoded")
				}
			}
		}
	}
}
