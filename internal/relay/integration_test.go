package relay_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// world is a relay in front of two real distribution registries: a Docker
// Hub look-alike with token auth whose blobs live on a fake CDN, and an
// anonymous one for the k8s route that redirects manifests to a relative
// location, as registry.k8s.io does.
type world struct {
	relay  *httptest.Server
	app    *app.App
	issuer *relaytest.TokenIssuer
	hub    *relaytest.Registry
	k8s    *relaytest.Registry
	cdn    *blobCDN
}

func newWorld(t *testing.T, extraEnv ...string) *world {
	t.Helper()
	w := &world{}
	w.issuer = relaytest.NewTokenIssuer(t, relaytest.IssuerOptions{
		Users:        map[string]string{"alice": "wonderland"},
		PrivateRepos: []string{"private/*"},
	})
	w.cdn = newBlobCDN(t)
	w.hub = relaytest.NewRegistry(t, relaytest.RegistryOptions{Auth: w.issuer, Wrap: w.cdn.redirectBlobs})
	w.cdn.origin = w.hub.Handler()
	w.k8s = relaytest.NewRegistry(t, relaytest.RegistryOptions{Wrap: redirectManifests})
	environ := map[string]string{
		"RELAY_BASE_DOMAIN":  "test",
		"DOCKERHUB_UPSTREAM": w.hub.URL,
		"GHCR_UPSTREAM":      w.hub.URL,
		"K8S_UPSTREAM":       w.k8s.URL,
		// The token service is a host of its own, as auth.docker.io is.
		"DOCKERHUB_AUTH_HOSTS": w.issuer.Host,
		"GHCR_AUTH_HOSTS":      w.issuer.Host,
	}
	for i := 0; i+1 < len(extraEnv); i += 2 {
		environ[extraEnv[i]] = strings.ReplaceAll(extraEnv[i+1], "$K8S", w.k8s.URL)
	}
	w.relay, w.app = startRelay(t, environ)
	return w
}

// options makes go-containerregistry reach every *.test host at the relay.
func (w *world) options(t *testing.T, auth authn.Authenticator) []remote.Option {
	addr := strings.TrimPrefix(w.relay.URL, "http://")
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
		DisableCompression: true,
	}
	t.Cleanup(tr.CloseIdleConnections)
	if auth == nil {
		auth = authn.Anonymous
	}
	return []remote.Option{remote.WithTransport(tr), remote.WithAuth(auth)}
}

func ref(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPullThroughRelay(t *testing.T) {
	w := newWorld(t)
	index := relaytest.RandomMultiArchIndex(t)
	indexDigest := relaytest.PushIndex(t, w.hub, "library/multi:latest", index)
	ociIndexDigest := relaytest.PushIndex(t, w.hub, "library/ociindex:v1", relaytest.RandomOCIIndex(t))
	img := relaytest.RandomImage(t, 3, 256<<10)
	imgDigest := relaytest.PushImage(t, w.hub, "someuser/app:1.0", img)
	k8sDigest := relaytest.PushImage(t, w.k8s, "pause:3.10", relaytest.RandomImage(t, 1, 4096))

	for _, tc := range []struct {
		ref   string
		want  v1.Hash
		index bool
	}{
		{"dhcr.test/multi:latest", indexDigest, true},
		{"dhcr.test/library/multi:latest", indexDigest, true},
		{"dhcr.test/ociindex:v1", ociIndexDigest, true},
		{"dhcr.test/someuser/app:1.0", imgDigest, false},
		{"dhcr.test/someuser/app@" + imgDigest.String(), imgDigest, false},
		{"k8s.test/pause:3.10", k8sDigest, false},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			opts := w.options(t, nil)
			if tc.index {
				idx, err := remote.Index(ref(t, tc.ref), opts...)
				if err != nil {
					t.Fatal(err)
				}
				assertDigest(t, idx.Digest, tc.want)
				if err := validate.Index(idx); err != nil {
					t.Fatalf("index content does not verify: %v", err)
				}
				return
			}
			img, err := remote.Image(ref(t, tc.ref), opts...)
			if err != nil {
				t.Fatal(err)
			}
			assertDigest(t, img.Digest, tc.want)
			if err := validate.Image(img); err != nil {
				t.Fatalf("image content does not verify: %v", err)
			}
		})
	}
	assertScopesPatched(t, w.issuer.Requests())
	if w.cdn.served() == 0 {
		t.Error("no blob was served by the CDN; redirects were not exercised")
	}
}

func assertDigest(t *testing.T, got func() (v1.Hash, error), want v1.Hash) {
	t.Helper()
	d, err := got()
	if err != nil {
		t.Fatal(err)
	}
	if d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
}

// assertScopesPatched checks that token requests reached the issuer with
// Docker Hub's library/ namespace, whatever the client asked for.
func assertScopesPatched(t *testing.T, reqs []relaytest.TokenRequest) {
	t.Helper()
	seen := false
	for _, r := range reqs {
		for _, s := range r.Scopes {
			if strings.HasPrefix(s, "repository:multi:") {
				t.Errorf("issuer received unpatched scope %q", s)
			}
			seen = seen || strings.HasPrefix(s, "repository:library/multi:")
		}
	}
	if !seen {
		t.Error("no token request for library/multi reached the issuer through the relay")
	}
}

func TestPrivateRepositoryNeedsCredentials(t *testing.T) {
	w := newWorld(t)
	want := relaytest.PushImage(t, w.hub, "private/secret:v1", relaytest.RandomImage(t, 1, 1024))

	_, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, nil)...)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous pull of a private image: err = %v, want a 401", err)
	}

	alice := &authn.Basic{Username: "alice", Password: "wonderland"}
	img, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, alice)...)
	if err != nil {
		t.Fatalf("pull with credentials: %v", err)
	}
	assertDigest(t, img.Digest, want)
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	wrong := &authn.Basic{Username: "alice", Password: "nope"}
	if _, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, wrong)...); err == nil {
		t.Fatal("pull with a wrong password succeeded")
	}
}

func TestTokenEndpointPostAndScopes(t *testing.T) {
	w := newWorld(t)
	relaytest.PushImage(t, w.hub, "library/alpine:3", relaytest.RandomImage(t, 1, 1024))
	// Prime nothing: the relay must discover the realm by itself, as after a restart.
	form := "grant_type=password&username=alice&password=wonderland&service=" + w.issuer.Service +
		"&scope=repository:alpine:pull+repository:someuser/app:pull&client_id=containerd"
	req, _ := http.NewRequest(http.MethodPost, w.relay.URL+"/token", strings.NewReader(form))
	req.Host = hubHost
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "token") {
		t.Fatalf("POST token: %d %s", resp.StatusCode, body)
	}
	reqs := w.issuer.Requests()
	last := reqs[len(reqs)-1]
	if last.Method != http.MethodPost || last.Username != "alice" ||
		strings.Join(last.Scopes, " ") != "repository:library/alpine:pull repository:someuser/app:pull" {
		t.Errorf("issuer saw %+v", last)
	}

	resp = call(t, w.relay, "GET", hubHost, "/token?service="+w.issuer.Service+
		"&scope=repository:alpine:pull&scope=repository:library/busybox:pull", nil)
	readAll(t, resp)
	reqs = w.issuer.Requests()
	if got := strings.Join(reqs[len(reqs)-1].Scopes, " "); got != "repository:library/alpine:pull repository:library/busybox:pull" {
		t.Errorf("GET scopes reached issuer as %q", got)
	}
}

func TestMetricsAfterPull(t *testing.T) {
	w := newWorld(t)
	relaytest.PushImage(t, w.hub, "library/nginx:latest", relaytest.RandomImage(t, 2, 64<<10))
	img, err := remote.Image(ref(t, "dhcr.test/nginx:latest"), w.options(t, nil)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(img); err != nil {
		t.Fatal(err)
	}
	g := w.app.Gatherer()
	for _, want := range []string{
		`relay_http_requests_total{code="200",kind="manifest",method="GET",route="dockerhub"}`,
		`relay_http_requests_total{code="200",kind="blob",method="GET",route="dockerhub"}`,
		`relay_http_requests_total{code="401",kind="ping",method="GET",route="dockerhub"}`,
		`relay_http_requests_total{code="200",kind="token",method="GET",route="dockerhub"}`,
		`relay_upstream_requests_total{code="200",route="dockerhub"}`,
		`relay_bytes_sent_total{route="dockerhub"}`,
		`relay_http_request_duration_seconds_count{kind="blob",route="dockerhub"}`,
		`relay_route_info{host="dhcr.test",route="dockerhub",upstream="` + w.hub.Host + `"}`,
		`relay_route_info{host="k8s.test",route="k8s",upstream="` + w.k8s.Host + `"}`,
	} {
		if !metricPresent(t, g, want) {
			t.Errorf("scrape lacks %s", want)
		}
	}
}

// metricPresent looks for series in the text exposition with a value > 0.
// The access-log middleware records a request just after its response is
// written, so the scrape is retried briefly.
func metricPresent(t *testing.T, g prometheus.Gatherer, series string) bool {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		for _, line := range strings.Split(scrape(t, g), "\n") {
			if v, ok := strings.CutPrefix(line, series+" "); ok && v != "0" {
				return true
			}
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// blobCDN plays a CDN: the registry answers authorized blob requests with
// a 307 to it, and it serves the bytes, refusing any Authorization header.
type blobCDN struct {
	t      *testing.T
	srv    *httptest.Server
	origin http.Handler
	mu     sync.Mutex
	hits   int
}

func newBlobCDN(t *testing.T) *blobCDN {
	c := &blobCDN{t: t}
	c.srv = httptest.NewServer(http.HandlerFunc(c.serve))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *blobCDN) serve(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" {
		c.t.Errorf("CDN received an Authorization header for %s", r.URL.Path)
		http.Error(w, "signed URLs take no Authorization", http.StatusBadRequest)
		return
	}
	c.mu.Lock()
	c.hits++
	c.mu.Unlock()
	// The origin trusts its CDN: Handler skips auth.
	in := r.Clone(r.Context())
	in.URL.Path = strings.TrimPrefix(r.URL.Path, "/cdn")
	in.RequestURI = ""
	c.origin.ServeHTTP(w, in)
}

func (c *blobCDN) served() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// redirectBlobs sends authorized blob GET/HEADs to the CDN.
func (c *blobCDN) redirectBlobs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "/blobs/sha256:") || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		probe := httptest.NewRecorder()
		head := r.Clone(r.Context())
		head.Method = http.MethodHead
		next.ServeHTTP(probe, head)
		if probe.Code != http.StatusOK {
			for k, v := range probe.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(probe.Code)
			return
		}
		http.Redirect(w, r, c.srv.URL+"/cdn"+r.URL.Path+"?sig=ok", http.StatusTemporaryRedirect)
	})
}

// redirectManifests answers manifest requests with a relative redirect
// to the same registry under /ar/, like Artifact Registry behind registry.k8s.io.
func redirectManifests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/ar"); ok {
			r2 := r.Clone(r.Context())
			r2.URL.Path = rest
			next.ServeHTTP(w, r2)
			return
		}
		if strings.Contains(r.URL.Path, "/manifests/") {
			w.Header().Set("Location", "/ar"+r.URL.Path)
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		next.ServeHTTP(w, r)
	})
}
