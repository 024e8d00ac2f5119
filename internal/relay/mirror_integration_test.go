package relay_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

const mirrorHost = "mirror.test"

// TestMirrorHostPulls pulls through the mirror host the way each client
// addresses it: Docker's registry-mirrors (library/ names, no prefix),
// path prefixes (podman/CRI-O locations and "relay/gcr.io/x" references),
// for Docker Hub official and user images and another registry with
// token auth.
func TestMirrorHostPulls(t *testing.T) {
	w := newWorld(t)
	list := relaytest.PushIndex(t, w.hub, "library/multi:latest", relaytest.RandomMultiArchIndex(t))
	app := relaytest.PushImage(t, w.hub, "someuser/app:1.0", relaytest.RandomImage(t, 2, 4096))
	pause := relaytest.PushImage(t, w.k8s, "pause:3.10", relaytest.RandomImage(t, 1, 4096))
	for _, tc := range []struct {
		ref   string
		want  string
		index bool
	}{
		{"mirror.test/library/multi:latest", list.String(), true}, // Docker registry-mirrors
		{"mirror.test/multi:latest", list.String(), true},         // official image, short
		{"mirror.test/someuser/app:1.0", app.String(), false},     // Docker Hub user
		{"mirror.test/docker.io/library/multi:latest", list.String(), true},
		{"mirror.test/docker.io/multi:latest", list.String(), true},
		{"mirror.test/ghcr.io/someuser/app:1.0", app.String(), false}, // another registry, token auth
		{"mirror.test/registry.k8s.io/pause:3.10", pause.String(), false},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			opts := w.options(t, nil)
			if tc.index {
				idx, err := remote.Index(ref(t, tc.ref), opts...)
				if err != nil {
					t.Fatal(err)
				}
				if d, _ := idx.Digest(); d.String() != tc.want {
					t.Fatalf("digest %s, want %s", d, tc.want)
				}
				if err := validate.Index(idx); err != nil {
					t.Fatal(err)
				}
				return
			}
			img, err := remote.Image(ref(t, tc.ref), opts...)
			if err != nil {
				t.Fatal(err)
			}
			if d, _ := img.Digest(); d.String() != tc.want {
				t.Fatalf("digest %s, want %s", d, tc.want)
			}
			if err := validate.Image(img); err != nil {
				t.Fatal(err)
			}
		})
	}
	for _, r := range w.issuer.Requests() {
		for _, s := range r.Scopes {
			if strings.Contains(s, "ghcr.io/") || strings.Contains(s, "docker.io/") {
				t.Errorf("upstream token service saw the client's registry prefix: %q", s)
			}
		}
	}
}

func TestMirrorRefusesUnservedRegistries(t *testing.T) {
	w := newWorld(t)
	for _, path := range []string{
		"/v2/evil.example.com/x/manifests/latest",
		"/v2/x/manifests/latest?ns=evil.example.com",
	} {
		wantOCIError(t, call(t, w.relay, "GET", mirrorHost, path, nil), http.StatusNotFound, "NAME_UNKNOWN")
	}
}

// TestContainerdNamespaces plays containerd's hosts.toml mirror: plain
// names with ?ns= naming the registry, two different upstreams, each with
// its own token flow through the relay.
func TestContainerdNamespaces(t *testing.T) {
	w := newWorld(t)
	list := relaytest.PushIndex(t, w.hub, "library/multi:latest", relaytest.RandomMultiArchIndex(t))
	pause := relaytest.PushImage(t, w.k8s, "pause:3.10", relaytest.RandomImage(t, 1, 4096))
	for _, tc := range []struct{ path, want string }{
		{"/v2/library/multi/manifests/latest?ns=docker.io", list.String()},
		{"/v2/pause/manifests/3.10?ns=registry.k8s.io", pause.String()},
	} {
		resp := getWithTokenFlow(t, w, mirrorHost, tc.path)
		readAll(t, resp)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != tc.want {
			t.Errorf("%s: %d digest %q, want 200 %s", tc.path, resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), tc.want)
		}
	}
}

// getWithTokenFlow does what containerd does: request, and on a 401
// fetch a token from the challenge's realm and retry.
func getWithTokenFlow(t *testing.T, w *world, host, path string) *http.Response {
	t.Helper()
	accept := http.Header{"Accept": {"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json"}}
	resp := call(t, w.relay, "GET", host, path, accept)
	if resp.StatusCode != http.StatusUnauthorized {
		return resp
	}
	resp.Body.Close()
	cs, err := auth.ParseChallenges(resp.Header.Get("WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	realm := cs[0].Get("realm")
	tokenPath := strings.TrimPrefix(realm, "http://"+host)
	q := fmt.Sprintf("?service=%s&scope=%s", cs[0].Get("service"), cs[0].Get("scope"))
	tok := call(t, w.relay, "GET", host, tokenPath+q, nil)
	var body struct{ Token string }
	if err := json.NewDecoder(tok.Body).Decode(&body); err != nil || body.Token == "" {
		t.Fatalf("token from %s: %d %v", realm, tok.StatusCode, err)
	}
	tok.Body.Close()
	accept.Set("Authorization", "Bearer "+body.Token)
	return call(t, w.relay, "GET", host, path, accept)
}

// TestRelayAccountServesAnonymousClients gives the Docker Hub route the
// relay's own account: an anonymous client then pulls a private image,
// with tokens limited to pull.
func TestRelayAccountServesAnonymousClients(t *testing.T) {
	w := newWorld(t, "DOCKERHUB_USERNAME", "alice", "DOCKERHUB_PASSWORD", "wonderland")
	want := relaytest.PushImage(t, w.hub, "private/secret:v1", relaytest.RandomImage(t, 1, 1024))
	img, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, nil)...)
	if err != nil {
		t.Fatalf("anonymous pull with the relay's account: %v", err)
	}
	if d, _ := img.Digest(); d != want {
		t.Fatalf("digest %s, want %s", d, want)
	}
	resp := call(t, w.relay, "GET", hubHost, "/token?service="+w.issuer.Service+"&scope=repository:private/secret:pull,push&scope=registry:catalog:*", nil)
	readAll(t, resp)
	reqs := w.issuer.Requests()
	last := reqs[len(reqs)-1]
	if last.Username != "alice" || strings.Join(last.Scopes, " ") != "repository:private/secret:pull" {
		t.Errorf("relay account request = %+v, want alice with pull only", last)
	}
	// A client with its own credentials keeps them.
	bob := &authn.Basic{Username: "alice", Password: "wrong"}
	if _, err := remote.Image(ref(t, "dhcr.test/private/secret:v1"), w.options(t, bob)...); err == nil {
		t.Error("a client's own (wrong) credentials were replaced by the relay's")
	}
}

// TestCustomRoute adds a registry through configuration only, as an
// operator adds one the built-in table lacks: its upstream with a token
// service of its own, access domain, registry name and Docker Hub's
// library/ patch. Images are pulled through the access domain and through
// the mirror host by the registry name, with short names patched on the
// way and in the token scopes.
func TestCustomRoute(t *testing.T) {
	issuer := relaytest.NewTokenIssuer(t, relaytest.IssuerOptions{})
	harbor := relaytest.NewRegistry(t, relaytest.RegistryOptions{Auth: issuer})
	w := newWorld(t, "RELAY_CUSTOM_ROUTES", "harbor", "HARBOR_UPSTREAM", harbor.URL, "HARBOR_AUTH_HOSTS", issuer.Host,
		"HARBOR_ACCESS_DOMAIN", "harbor.corp.test", "HARBOR_REGISTRY", "harbor.corp.example", "HARBOR_LIBRARY_PATCH", "true")
	official := relaytest.PushImage(t, harbor, "library/tool:2", relaytest.RandomImage(t, 1, 2048))
	team := relaytest.PushImage(t, harbor, "team/tool:2", relaytest.RandomImage(t, 1, 2048))
	for _, tc := range []struct {
		ref  string
		want v1.Hash
	}{
		{"harbor.corp.test/tool:2", official},
		{"harbor.corp.test/library/tool:2", official},
		{"harbor.corp.test/team/tool:2", team},
		{"mirror.test/harbor.corp.example/tool:2", official},
		{"mirror.test/harbor.corp.example/team/tool:2", team},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			img, err := remote.Image(ref(t, tc.ref), w.options(t, nil)...)
			if err != nil {
				t.Fatal(err)
			}
			assertDigest(t, img.Digest, tc.want)
			if err := validate.Image(img); err != nil {
				t.Fatal(err)
			}
		})
	}
	resp := getWithTokenFlow(t, w, mirrorHost, "/v2/tool/manifests/2?ns=harbor.corp.example")
	readAll(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != official.String() {
		t.Errorf("containerd ?ns=harbor.corp.example: %d digest %q, want 200 %s", resp.StatusCode, resp.Header.Get("Docker-Content-Digest"), official)
	}
	for _, r := range issuer.Requests() {
		for _, s := range r.Scopes {
			if strings.HasPrefix(s, "repository:tool:") || strings.Contains(s, "harbor.corp.example/") {
				t.Errorf("the custom route's token service got scope %q, want library/tool without the registry prefix", s)
			}
		}
	}
	if len(issuer.Requests()) == 0 {
		t.Error("no token request reached the custom route's token service")
	}
	if !metricPresent(t, w.app.Gatherer(), `relay_http_requests_total{code="200",kind="manifest",method="GET",route="harbor"}`) {
		t.Error("custom route's requests are not counted under its name")
	}
}
