package upstreamauth

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/auth"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// tokenService is a fake realm that fails the test on anything but an
// anonymous GET with the challenge's service and scope.
type tokenService struct {
	t         *testing.T
	expiresIn int
	body      string // when set, the answer instead of a token
	mu        sync.Mutex
	issued    int
}

func (ts *tokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method != http.MethodGet || r.Header.Get("Authorization") != "" ||
		q.Get("service") != "fake-registry" || q.Get("scope") != "repository:team/app:pull" || q.Get("keep") != "1" {
		ts.t.Errorf("token request %s %s (Authorization %q)", r.Method, r.URL, r.Header.Get("Authorization"))
		http.Error(w, "bad token request", http.StatusBadRequest)
		return
	}
	if ts.body != "" {
		_, _ = io.WriteString(w, ts.body)
		return
	}
	ts.mu.Lock()
	ts.issued++
	n := ts.issued
	ts.mu.Unlock()
	fmt.Fprintf(w, `{"token":"tok-%d","expires_in":%d}`, n, ts.expiresIn)
}

func (ts *tokenService) count() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.issued
}

// fakeRegistry challenges every request without a token from realm and
// records the Authorization of the ones it serves.
type fakeRegistry struct {
	realm string
	mu    sync.Mutex
	seen  []string
}

func (fr *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := r.Header.Get("Authorization")
	if !strings.HasPrefix(a, "Bearer tok-") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+fr.realm+`",service="fake-registry",scope="repository:team/app:pull"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return
	}
	fr.mu.Lock()
	fr.seen = append(fr.seen, a)
	fr.mu.Unlock()
	_, _ = io.WriteString(w, "manifest")
}

func (fr *fakeRegistry) served() []string {
	fr.mu.Lock()
	defer fr.mu.Unlock()
	return append([]string(nil), fr.seen...)
}

// setup starts a registry whose realm is on a token server of its own,
// and a Bearer allowed to use that host for it.
func setup(t *testing.T, ts *tokenService) (*Bearer, *fakeRegistry, string, *fakeClock) {
	t.Helper()
	tokens := httptest.NewServer(ts)
	t.Cleanup(tokens.Close)
	reg := &fakeRegistry{realm: tokens.URL + "/token?keep=1"}
	regSrv := httptest.NewServer(reg)
	t.Cleanup(regSrv.Close)
	tokenHost := strings.TrimPrefix(tokens.URL, "http://")
	regURL, _ := url.Parse(regSrv.URL)
	b := New(http.DefaultTransport, func(u *url.URL) []string {
		if u.Host == regURL.Host {
			return []string{tokenHost}
		}
		return nil
	})
	clock := &fakeClock{t: time.Unix(1_000_000, 0)}
	b.Now = clock.now
	return b, reg, regSrv.URL + "/v2/team/app/manifests/1", clock
}

func get(t *testing.T, b *Bearer, u string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := b.RoundTrip(req)
	if err == nil {
		t.Cleanup(func() { resp.Body.Close() })
	}
	return resp, err
}

func mustGet(t *testing.T, b *Bearer, u string) {
	t.Helper()
	resp, err := get(t, b, u)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", u, resp.StatusCode)
	}
}

// TestTokenFetchedOnceAndReused: the first request meets the challenge
// and fetches a token; later ones for the repository send it straight
// away, until its lifetime (less the margin) is over.
func TestTokenFetchedOnceAndReused(t *testing.T) {
	ts := &tokenService{t: t, expiresIn: 300}
	b, reg, manifest, clock := setup(t, ts)
	for range 3 {
		mustGet(t, b, manifest)
	}
	if n := ts.count(); n != 1 {
		t.Errorf("token service asked %d times, want once", n)
	}
	if got := reg.served(); len(got) != 3 || got[2] != "Bearer tok-1" {
		t.Errorf("registry served %q, want tok-1 three times", got)
	}
	clock.advance(269 * time.Second) // 300 s less a tenth is 270 s
	mustGet(t, b, manifest)
	if n := ts.count(); n != 1 {
		t.Errorf("token re-fetched within its lifetime (%d fetches)", n)
	}
	clock.advance(time.Second)
	mustGet(t, b, manifest)
	if n := ts.count(); n != 2 {
		t.Errorf("after its lifetime: %d fetches, want the token fetched again", n)
	}
	if got := reg.served(); got[len(got)-1] != "Bearer tok-2" {
		t.Errorf("after expiry the registry saw %q, want tok-2", got[len(got)-1])
	}
}

// TestShortLivedTokenNotKeptPastItsLifetime: a token good for 10 s is not
// reused a minute later (it was once cached for at least 60 s).
func TestShortLivedTokenNotKeptPastItsLifetime(t *testing.T) {
	ts := &tokenService{t: t, expiresIn: 10}
	b, _, manifest, clock := setup(t, ts)
	mustGet(t, b, manifest)
	clock.advance(8 * time.Second)
	mustGet(t, b, manifest)
	if n := ts.count(); n != 1 {
		t.Fatalf("within 9 s: %d fetches, want 1", n)
	}
	clock.advance(2 * time.Second)
	mustGet(t, b, manifest)
	if n := ts.count(); n != 2 {
		t.Errorf("10 s after a 10 s token was issued: %d fetches, want 2", n)
	}
}

// TestUnauthorizedWithoutChallengePassesThrough: a 401 that names no
// Bearer realm is the registry's answer, body and all.
func TestUnauthorizedWithoutChallengePassesThrough(t *testing.T) {
	for name, challenge := range map[string]string{
		"no header":        "",
		"basic only":       `Basic realm="registry"`,
		"bearer, no realm": `Bearer service="x"`,
		"malformed":        `Bearer realm="unterminated`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if challenge != "" {
					w.Header().Set("WWW-Authenticate", challenge)
				}
				http.Error(w, "who are you", http.StatusUnauthorized)
			}))
			defer srv.Close()
			resp, err := get(t, New(http.DefaultTransport, nil), srv.URL+"/v2/app/manifests/1")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusUnauthorized || strings.TrimSpace(string(body)) != "who are you" {
				t.Errorf("got %d %q, want the registry's own 401", resp.StatusCode, body)
			}
		})
	}
}

// TestRefusedRealmIsNeverAsked: a realm on a host the registry may not
// name fails the request, and no token request is sent.
func TestRefusedRealmIsNeverAsked(t *testing.T) {
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("refused realm contacted: %s", r.URL)
	}))
	defer elsewhere.Close()
	reg := &fakeRegistry{realm: elsewhere.URL + "/token"}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	_, err := get(t, New(http.DefaultTransport, nil), srv.URL+"/v2/team/app/manifests/1")
	if !errors.Is(err, auth.ErrRealmRefused) {
		t.Errorf("err = %v, want ErrRealmRefused", err)
	}
}

func TestOversizedTokenResponseRefused(t *testing.T) {
	ts := &tokenService{t: t, body: `{"token":"` + strings.Repeat("a", auth.MaxTokenBody) + `"}`}
	b, reg, manifest, _ := setup(t, ts)
	if _, err := get(t, b, manifest); err == nil {
		t.Error("an oversized token response was accepted")
	}
	if len(reg.served()) != 0 {
		t.Error("the registry was sent a token from an oversized response")
	}
}

func TestCheckRealm(t *testing.T) {
	allowed := func(u *url.URL) []string {
		if u.Host == "registry.example" {
			return []string{"auth.example", "auth2.example:8443"}
		}
		return nil
	}
	b := New(nil, allowed)
	for _, tc := range []struct {
		registry, realm string
		ok              bool
	}{
		{"https://registry.example", "https://registry.example/token", true},
		{"https://registry.example", "https://REGISTRY.example:443/token", true},
		{"https://registry.example", "https://auth.example/token?service=x", true},
		{"https://registry.example", "https://auth2.example:8443/token", true},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5000/token", true},
		{"http://127.0.0.1:5000", "https://127.0.0.1:5000/token", false}, // another origin
		{"https://registry.example", "http://registry.example/token", false},
		{"https://registry.example", "http://auth.example/token", false},
		{"https://registry.example", "https://user:pw@registry.example/token", false},
		{"https://registry.example", "https://auth2.example/token", false}, // wrong port
		{"https://registry.example", "https://evil.example/token", false},
		{"https://registry.example", "https://registry.example.evil.example/token", false},
		{"https://other.example", "https://auth.example/token", false}, // another registry's auth host
		{"https://registry.example", "ftp://registry.example/token", false},
		{"https://registry.example", "/token", false},
		{"https://registry.example", "https://:443/token", false},
		{"https://registry.example", "://bad", false},
	} {
		reg, _ := url.Parse(tc.registry)
		u, err := b.checkRealm(reg, tc.realm)
		switch {
		case tc.ok && err != nil:
			t.Errorf("registry %s, realm %s: refused: %v", tc.registry, tc.realm, err)
		case !tc.ok && !errors.Is(err, auth.ErrRealmRefused):
			t.Errorf("registry %s, realm %s: got %v, %v, want a refusal", tc.registry, tc.realm, u, err)
		}
	}
}

func TestRepositoryOf(t *testing.T) {
	for in, want := range map[string]string{
		"/v2/library/nginx/manifests/latest": "/v2/library/nginx",
		"/v2/a/b/c/blobs/sha256:00":          "/v2/a/b/c",
		"/v2/app/tags/list":                  "/v2/app",
	} {
		if got := repositoryOf(in); got != want {
			t.Errorf("repositoryOf(%q) = %q, want %q", in, got, want)
		}
	}
}
