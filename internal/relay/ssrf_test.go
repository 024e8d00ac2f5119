package relay

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/netguard"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// forbidden is a loopback server that fails the test when reached: it
// stands for the metadata service, the admin port, an internal API.
func forbidden(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		t.Errorf("a redirect reached a non-public address: %s %s", r.Method, r.URL)
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// rebindingTransport is a real transport with the relay's guarded dialer
// whose "resolver" turns every name ending in .rebind.test into 127.0.0.1,
// as a DNS rebinding attacker's server would at dial time.
func rebindingTransport(t *testing.T) *http.Transport {
	t.Helper()
	dial := netguard.DialContext(&net.Dialer{Timeout: 2 * time.Second})
	tr := &http.Transport{
		Proxy: netguard.Proxy(func(*http.Request) (*url.URL, error) { return nil, nil }),
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, _ := net.SplitHostPort(addr)
			if strings.HasSuffix(host, ".rebind.test") {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dial(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func TestRedirectsToNonPublicAddressesRefused(t *testing.T) {
	target, hits := forbidden(t)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(target.URL, "http://"))
	quay := &registry.Route{Name: "quay", Upstream: &url.URL{Scheme: "http", Host: "quay.example"}}
	for _, tc := range []struct{ location, reason string }{
		{"http://127.0.0.1:" + port + "/x", "(loopback)"},
		{"http://169.254.169.254/latest/meta-data/iam/security-credentials/", "(link-local)"},
		{"http://[fd00:ec2::254]/latest/meta-data/", "(private)"},
		{"http://10.0.0.1/", "(private)"},
		{"http://172.16.5.4:8080/", "(private)"},
		{"http://192.168.1.1/", "(private)"},
		{"http://100.100.100.200/latest/meta-data/", "(private)"},
		{"http://[::1]:" + port + "/", "(loopback)"},
		{"http://[::ffff:127.0.0.1]:" + port + "/", "(loopback)"},
		{"http://0.0.0.0:" + port + "/", "(unspecified)"},
		{"http://224.0.0.1/", "(multicast)"},
		{"http://localhost:" + port + "/", "(loopback)"},
		{"http://LOCALHOST.:" + port + "/", "(loopback)"},
		{"http://admin.localhost:" + port + "/", "(loopback)"},
		// A name is judged on the address it resolves to when dialled.
		{"http://cdn.rebind.test:" + port + "/blob", "cdn.rebind.test resolves to 127.0.0.1, which is not a public address (loopback)"},
	} {
		t.Run(tc.location, func(t *testing.T) {
			up := &hops{answers: map[string]string{"http://quay.example/v2/x/blobs/d": tc.location}, auth: map[string]string{}}
			f := offline(newRedirectFollower(quay, testGuard(up, rebindingTransport(t)), 5, false))
			ctx := context.Background()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://quay.example/v2/x/blobs/d", nil)
			_, err := f.RoundTrip(req)
			var re *redirectError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want a redirectError with %q", err, tc.reason)
			}
			if len(up.auth) != 1 {
				t.Errorf("the refused hop was sent over the upstream transport: %v", up.auth)
			}
		})
	}
	if hits.Load() != 0 {
		t.Fatalf("%d requests reached the forbidden server", hits.Load())
	}
}

func TestRedirectToPublicNameStillFollowed(t *testing.T) {
	// The guard must not get in the way of ordinary CDN hops: with the
	// mark set, a hop to a public name goes out over the public pool.
	quay := &registry.Route{Name: "quay", Upstream: &url.URL{Scheme: "https", Host: "quay.io"}}
	var sawMark atomic.Bool
	public := roundTripFunc(func(req *http.Request) (*http.Response, error) {
		// The mark, seen by its effect: a dial to loopback would be refused.
		sawMark.Store(netguard.Control(req.Context(), "tcp", "127.0.0.1:443", nil) != nil)
		return &http.Response{StatusCode: 200, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	})
	up := &hops{answers: map[string]string{"https://quay.io/v2/x/blobs/d": "https://cdn01.quay.io/b?sig=1"}, auth: map[string]string{}}
	f := offline(newRedirectFollower(quay, testGuard(up, public), 5, false))
	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://quay.io/v2/x/blobs/d", nil)
	resp, err := f.RoundTrip(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("hop to a CDN: %v %v", resp, err)
	}
	if !sawMark.Load() {
		t.Error("the CDN hop was not marked public-only")
	}
	if _, sent := up.auth["https://cdn01.quay.io/b?sig=1"]; sent {
		t.Error("the CDN hop went over the upstream's pool")
	}
}

// offline makes f's origin lookups fail at once, as they would for the
// made-up names these tests use, without waiting on a DNS server.
func offline(f *redirectFollower) *redirectFollower {
	f.guard.origins.resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
	return f
}

// testGuard is a hopGuard over next, with public for public-only hops.
func testGuard(next, public http.RoundTripper) *hopGuard {
	return &hopGuard{next: next, public: public, origins: newOrigins()}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// TestPrivateUpstreamMayRedirectPrivately is the exception: a route the
// operator pointed at its own network follows redirects within it.
func TestPrivateUpstreamMayRedirectPrivately(t *testing.T) {
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("blob"))
	}))
	defer storage.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, storage.URL+"/b", http.StatusTemporaryRedirect)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	route := &registry.Route{Name: "local", Upstream: u, UpstreamOverridden: true}
	tr := rebindingTransport(t)
	f := newRedirectFollower(route, testGuard(tr, publicHops(tr)), 5, false)
	defer closeIdle(f.guard.public)
	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, upstream.URL+"/v2/x/blobs/d", nil)
	resp, err := f.RoundTrip(req)
	if err != nil {
		t.Fatalf("redirect within a private upstream's network: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

// TestFallbackRealmIsSteered: the token realm a fallback advertises is
// an address an upstream chose, so it gets the same guard as a redirect.
func TestFallbackRealmIsSteered(t *testing.T) {
	route := &registry.Route{
		Name:     "gcr",
		Upstream: &url.URL{Scheme: "https", Host: "gcr.io"},
		Fallback: &url.URL{Scheme: "https", Host: "mirror.gcr.io"},
	}
	up := &hops{answers: map[string]string{}, auth: map[string]string{}}
	f := offline(newRedirectFollower(route, testGuard(up, rebindingTransport(t)), 5, false))
	ctx := context.Background()
	for _, realm := range []string{"http://169.254.169.254/token", "https://auth.rebind.test:1/token"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, realm, nil)
		_, err := f.RoundTrip(req)
		var re *redirectError
		if !errors.As(err, &re) {
			t.Errorf("request to realm %s: err = %v, want a refusal", realm, err)
		}
	}
	if len(up.auth) != 0 {
		t.Errorf("a steered request was sent: %v", up.auth)
	}
	// The fallback itself and the upstream are the relay's own choice.
	for _, u := range []string{"https://mirror.gcr.io/v2/x/manifests/1", "https://gcr.io/v2/x/manifests/1"} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if _, err := f.RoundTrip(req); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

func TestPublicHopsHaveTheirOwnPool(t *testing.T) {
	tr := &http.Transport{}
	if p := publicHops(tr); p == http.RoundTripper(tr) {
		t.Fatal("public-only hops share the upstream transport's connection pool")
	}
	rt := roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("x") })
	if p := publicHops(rt); p == nil {
		t.Fatal("publicHops dropped a custom RoundTripper")
	}
}
