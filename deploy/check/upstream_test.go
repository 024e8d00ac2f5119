package check

import (
	"encoding/json"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// upstream is an in-memory registry that, like Docker Hub, answers 401
// with a Bearer challenge until the client fetches a token from its realm.
type upstream struct {
	url   string // http://127.0.0.1:port
	image v1.Image
	repo  string
}

const upstreamToken = "deploy-check-token"

// newUpstream starts the registry and pushes a random image to check/app:1.
func newUpstream(t *testing.T) *upstream {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	var realm string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Docker Hub's quota header, for relay_upstream_ratelimit_remaining.
		w.Header().Set("RateLimit-Remaining", "100;w=21600")
		if r.URL.Path == "/token" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"token": upstreamToken})
			return
		}
		if r.Header.Get("Authorization") != "Bearer "+upstreamToken {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm=%q,service="deploy-check"`, realm))
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"token required"}]}`))
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	realm = srv.URL + "/token"
	img, err := random.Image(64<<10, 2)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{url: srv.URL, image: img, repo: "check/app"}
	ref, err := name.NewTag(strings.TrimPrefix(srv.URL, "http://")+"/"+u.repo+":1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(authn.Anonymous)); err != nil {
		t.Fatalf("pushing to the test upstream: %v", err)
	}
	return u
}

// exercisedRelay is a relay that has exported each relay_* metric: env
// plus Docker Hub on a test upstream and
// registry.k8s.io on a failing one with that upstream as its fallback,
// after a few requests (a pull's first steps, a fallback, an unknown host).
func exercisedRelay(t *testing.T, env map[string]string) *relayProc {
	t.Helper()
	up := newUpstream(t)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	env = maps.Clone(env)
	env["DOCKERHUB_UPSTREAM"] = up.url
	env["K8S_UPSTREAM"] = failing.URL
	env["FALLBACK_REGISTRY_MAP"] = fmt.Sprintf(`{"k8s":%q}`, up.url)
	p := startRelay(t, env)
	dockerhub, k8s := p.routeHost(t, "dockerhub"), p.routeHost(t, "k8s")
	for _, req := range []struct{ host, path string }{
		{dockerhub, "/v2/"},
		{dockerhub, "/v2/check/app/manifests/1"},
		{k8s, "/v2/"},
		{"unknown.invalid", "/v2/"},
	} {
		resp := p.get(t, req.host, req.path)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return p
}
