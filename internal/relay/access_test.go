package relay_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/crypto/bcrypt"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

func TestRepositoryLists(t *testing.T) {
	up, last := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	env := hubEnv(up.URL)
	env["DOCKERHUB_ALLOW_REPOS"] = "library/*,bitnami/*"
	env["DOCKERHUB_DENY_REPOS"] = "library/evil"
	relay, a := startRelay(t, env)
	for path, want := range map[string]int{
		"/v2/nginx/manifests/1":         http.StatusOK, // library/nginx
		"/v2/bitnami/redis/manifests/1": http.StatusOK,
		"/v2/someuser/app/manifests/1":  http.StatusForbidden,
		"/v2/evil/manifests/1":          http.StatusForbidden,
		"/v2/library/evil/tags/list":    http.StatusForbidden,
		"/v2/library/a/b/manifests/1":   http.StatusForbidden,
		"/v2/":                          http.StatusOK,
	} {
		last.Store(nil)
		resp := call(t, relay, "GET", hubHost, path, nil)
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if want == http.StatusForbidden {
			wantOCIError(t, resp, http.StatusForbidden, "DENIED")
			if last.Load() != nil {
				t.Errorf("%s reached the upstream although denied", path)
			}
		}
		resp.Body.Close()
	}
	if !scrapeHas(t, a.Gatherer(), `relay_access_denied_total{reason="repository",route="dockerhub"} 4`) {
		t.Error("denials not counted")
	}
}

func TestClientAddressLists(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	env := hubEnv(up.URL)
	env["DOCKERHUB_ALLOW_CIDRS"] = "10.0.0.0/8"
	env["RELAY_TRUSTED_PROXIES"] = "127.0.0.1/32"
	relay, _ := startRelay(t, env)
	status := func(relay *httptest.Server, host string, hdr http.Header) int {
		path := "/v2/"
		if host != hubHost {
			path = "/" // the info page: no upstream behind other routes here
		}
		resp := call(t, relay, "GET", host, path, hdr)
		readAll(t, resp)
		return resp.StatusCode
	}
	if got := status(relay, hubHost, nil); got != http.StatusForbidden {
		t.Errorf("127.0.0.1 not in the list: %d, want 403", got)
	}
	if got := status(relay, hubHost, http.Header{"X-Forwarded-For": {"10.1.2.3"}}); got != http.StatusOK {
		t.Errorf("client 10.1.2.3 behind a trusted proxy: %d, want 200", got)
	}
	if got := status(relay, "k8s.test", nil); got == http.StatusForbidden {
		t.Errorf("another route without a list refused the client")
	}

	env["RELAY_TRUSTED_PROXIES"] = ""
	relay2, _ := startRelay(t, env)
	if got := status(relay2, hubHost, http.Header{"X-Forwarded-For": {"10.1.2.3"}}); got != http.StatusForbidden {
		t.Errorf("X-Forwarded-For from an untrusted peer was believed: %d", got)
	}
}

func TestRateAndTransferLimits(t *testing.T) {
	release := make(chan struct{})
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/blobs/") {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
			<-release
		}
	})
	env := hubEnv(up.URL)
	env["RELAY_RATE_LIMIT"] = "1"
	env["RELAY_RATE_BURST"] = "3"
	env["RELAY_MAX_TRANSFERS_PER_IP"] = "1"
	relay, a := startRelay(t, env)
	blob := "/v2/x/blobs/sha256:" + strings.Repeat("a", 64)
	first := call(t, relay, "GET", hubHost, blob, nil) // held open by the upstream
	defer first.Body.Close()
	second := call(t, relay, "GET", hubHost, blob, nil)
	if second.StatusCode != http.StatusTooManyRequests || second.Header.Get("Retry-After") == "" {
		t.Errorf("second concurrent transfer: %d Retry-After %q", second.StatusCode, second.Header.Get("Retry-After"))
	}
	wantOCIError(t, second, http.StatusTooManyRequests, "TOOMANYREQUESTS")
	close(release)
	third := call(t, relay, "GET", hubHost, "/v2/", nil)
	third.Body.Close()
	fourth := call(t, relay, "GET", hubHost, "/v2/", nil)
	if fourth.StatusCode != http.StatusTooManyRequests || fourth.Header.Get("Retry-After") == "" {
		t.Errorf("fourth request within a second with burst 3: %d", fourth.StatusCode)
	}
	fourth.Body.Close()
	text := scrape(t, a.Gatherer())
	for _, want := range []string{`reason="transfers"`, `reason="rate"`, `relay_limit{limit="rate_per_second"} 1`, `relay_limit{limit="transfers"} 1`} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestClientAuthentication puts the relay behind its own accounts: clients
// log in to the relay; the upstream (with token auth, and an anonymous
// one) never sees their relay password.
func TestClientAuthentication(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("relay-pass"), bcrypt.MinCost)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("carol:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, "RELAY_HTPASSWD_FILE", htpasswd)
	want := relaytest.PushImage(t, w.hub, "library/app:1", relaytest.RandomImage(t, 1, 2048))
	pause := relaytest.PushImage(t, w.k8s, "pause:3.10", relaytest.RandomImage(t, 1, 2048))
	carol := &authn.Basic{Username: "carol", Password: "relay-pass"}
	for image, digest := range map[string]string{"dhcr.test/app:1": want.String(), "k8s.test/pause:3.10": pause.String()} {
		img, err := remote.Image(ref(t, image), w.options(t, carol)...)
		if err != nil {
			t.Fatalf("%s with relay credentials: %v", image, err)
		}
		if d, _ := img.Digest(); d.String() != digest {
			t.Errorf("%s: digest %s", image, d)
		}
		for name, cred := range map[string]authn.Authenticator{"anonymous": authn.Anonymous, "wrong password": &authn.Basic{Username: "carol", Password: "nope"}} {
			if _, err := remote.Image(ref(t, image), w.options(t, cred)...); err == nil {
				t.Errorf("%s: %s client pulled through a relay that requires login", image, name)
			}
		}
	}
	for _, r := range w.issuer.Requests() {
		if r.HadAuthorization && r.Username != relaytest.AdminUser { // the admin pushed the images
			t.Errorf("the upstream token service saw credentials (%q): relay passwords must stay at the relay", r.Username)
		}
	}
	// An upstream token obtained elsewhere does not get past the relay.
	tok := call(t, w.relay, "GET", hubHost, "/token?service="+w.issuer.Service+"&scope=repository:library/app:pull", nil)
	if tok.StatusCode != http.StatusUnauthorized {
		t.Errorf("token without relay credentials: %d, want 401", tok.StatusCode)
	}
	tok.Body.Close()
}

// TestClientAuthenticationOnTheMirror: with relay accounts, a containerd
// style request (?ns=) must get a token for its own upstream, and a relay
// token issued for one route must not carry its upstream token to another.
func TestClientAuthenticationOnTheMirror(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("relay-pass"), bcrypt.MinCost)
	htpasswd := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("carol:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	w := newWorld(t, "RELAY_HTPASSWD_FILE", htpasswd)
	pause := relaytest.PushImage(t, w.k8s, "pause:3.10", relaytest.RandomImage(t, 1, 2048))
	relaytest.PushImage(t, w.hub, "library/app:1", relaytest.RandomImage(t, 1, 2048))
	accept := http.Header{"Accept": {"application/vnd.docker.distribution.manifest.v2+json"}}

	// containerd: request, 401 with the relay's challenge, token with
	// Basic relay credentials, retry.
	path := "/v2/pause/manifests/3.10?ns=registry.k8s.io"
	resp := call(t, w.relay, "GET", mirrorHost, path, accept)
	readAll(t, resp)
	cs, err := auth.ParseChallenges(resp.Header.Get("WWW-Authenticate"))
	if resp.StatusCode != http.StatusUnauthorized || err != nil {
		t.Fatalf("first request: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	tokenPath := strings.TrimPrefix(cs[0].Get("realm"), "http://"+mirrorHost) + "?service=" + cs[0].Get("service") + "&scope=" + cs[0].Get("scope")
	token := func(host, path string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", w.relay.URL+path, nil)
		req.Host = host
		req.SetBasicAuth("carol", "relay-pass")
		resp, err := w.relay.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || body.Token == "" {
			t.Fatalf("token via %s: %d", path, resp.StatusCode)
		}
		return body.Token
	}
	k8sToken := token(mirrorHost, tokenPath)
	accept.Set("Authorization", "Bearer "+k8sToken)
	resp = call(t, w.relay, "GET", mirrorHost, path, accept)
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != pause.String() {
		t.Fatalf("with the relay token: %d %q", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"))
	}
	// The same token on the Docker Hub route is refused by the relay.
	resp = call(t, w.relay, "GET", hubHost, "/v2/library/app/manifests/1", accept)
	readAll(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "/token/dockerhub.") {
		t.Errorf("k8s route's token on the dockerhub route: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
}
