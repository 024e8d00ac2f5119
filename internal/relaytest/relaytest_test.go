package relaytest

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func pullOptions(t *testing.T, auth authn.Authenticator) []remote.Option {
	return []remote.Option{
		remote.WithContext(t.Context()),
		remote.WithTransport(ClientTransport(t)),
		remote.WithAuth(auth),
	}
}

func mustRef(t *testing.T, reg *Registry, repoAndTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(reg.Host+"/"+repoAndTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestAuthRegistryPushAndAnonymousPull(t *testing.T) {
	t.Parallel()
	ti := NewTokenIssuer(t, IssuerOptions{PrivateRepos: []string{"private/*"}})
	reg := NewRegistry(t, RegistryOptions{Auth: ti})

	imgDigest := PushImage(t, reg, "public/app:v1", RandomImage(t, 2, 512))
	listDigest := PushIndex(t, reg, "public/multi:v1", RandomMultiArchIndex(t))
	ociDigest := PushIndex(t, reg, "public/oci:v1", RandomOCIIndex(t))

	img, err := remote.Image(mustRef(t, reg, "public/app:v1"), pullOptions(t, authn.Anonymous)...)
	if err != nil {
		t.Fatalf("anonymous pull: %v", err)
	}
	if got, _ := img.Digest(); got != imgDigest {
		t.Errorf("image digest = %s, want %s", got, imgDigest)
	}
	// Layers force blob GETs, not just the manifest.
	if _, err := img.Layers(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		repo      string
		want      v1.Hash
		mediaType types.MediaType
	}{
		{"public/multi:v1", listDigest, types.DockerManifestList},
		{"public/oci:v1", ociDigest, types.OCIImageIndex},
	}
	for _, tt := range tests {
		idx, err := remote.Index(mustRef(t, reg, tt.repo), pullOptions(t, authn.Anonymous)...)
		if err != nil {
			t.Fatalf("anonymous pull %s: %v", tt.repo, err)
		}
		if got, _ := idx.Digest(); got != tt.want {
			t.Errorf("%s digest = %s, want %s", tt.repo, got, tt.want)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if m.MediaType != tt.mediaType {
			t.Errorf("%s media type = %s, want %s", tt.repo, m.MediaType, tt.mediaType)
		}
		var platforms []string
		for _, d := range m.Manifests {
			platforms = append(platforms, d.Platform.String())
		}
		if want := []string{"linux/amd64", "linux/arm64"}; !slices.Equal(platforms, want) {
			t.Errorf("%s platforms = %v, want %v", tt.repo, platforms, want)
		}
	}

	reqs := ti.Requests()
	if !slices.ContainsFunc(reqs, func(r TokenRequest) bool {
		return r.Username == AdminUser && r.HadAuthorization && slices.Contains(r.Scopes, "repository:public/app:push,pull")
	}) {
		t.Errorf("no admin push token request in %+v", reqs)
	}
	if !slices.ContainsFunc(reqs, func(r TokenRequest) bool {
		return r.Username == "" && !r.HadAuthorization && r.Service == ti.Service &&
			slices.Contains(r.Scopes, "repository:public/app:pull")
	}) {
		t.Errorf("no anonymous pull token request in %+v", reqs)
	}
}

func TestPrivateRepoNeedsUser(t *testing.T) {
	t.Parallel()
	ti := NewTokenIssuer(t, IssuerOptions{
		Users:        map[string]string{"alice": "wonderland"},
		PrivateRepos: []string{"private/*"},
	})
	reg := NewRegistry(t, RegistryOptions{Auth: ti})
	want := PushImage(t, reg, "private/secret:v1", RandomImage(t, 1, 256))
	ref := mustRef(t, reg, "private/secret:v1")

	_, err := remote.Image(ref, pullOptions(t, authn.Anonymous)...)
	var terr *transport.Error
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous pull error = %v, want 401 transport error", err)
	}
	if len(terr.Errors) == 0 || terr.Errors[0].Code != transport.UnauthorizedErrorCode {
		t.Errorf("anonymous pull diagnostics = %+v, want UNAUTHORIZED", terr.Errors)
	}

	img, err := remote.Image(ref, pullOptions(t, &authn.Basic{Username: "alice", Password: "wonderland"})...)
	if err != nil {
		t.Fatalf("pull as alice: %v", err)
	}
	if got, _ := img.Digest(); got != want {
		t.Errorf("digest = %s, want %s", got, want)
	}

	_, err = remote.Image(ref, pullOptions(t, &authn.Basic{Username: "alice", Password: "wrong"})...)
	if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
		t.Errorf("pull with wrong password error = %v, want 401 from the issuer", err)
	}
}

func TestNoAuthRegistry(t *testing.T) {
	t.Parallel()
	var wrapped atomic.Int64
	reg := NewRegistry(t, RegistryOptions{Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			wrapped.Add(1)
			next.ServeHTTP(w, r)
		})
	}})
	want := PushIndex(t, reg, "library/multi:latest", RandomMultiArchIndex(t))

	idx, err := remote.Index(mustRef(t, reg, "library/multi:latest"), pullOptions(t, authn.Anonymous)...)
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	if got, _ := idx.Digest(); got != want {
		t.Errorf("digest = %s, want %s", got, want)
	}
	if wrapped.Load() == 0 {
		t.Error("Wrap middleware saw no requests")
	}

	seen := wrapped.Load()
	rec := httptest.NewRecorder()
	reg.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/library/multi/manifests/"+want.String(), nil))
	if rec.Code != http.StatusOK {
		t.Errorf("Handler() manifest GET = %d, want 200", rec.Code)
	}
	if wrapped.Load() != seen {
		t.Error("Handler() went through Wrap")
	}
}

func TestChallengePointsAtIssuer(t *testing.T) {
	t.Parallel()
	ti := NewTokenIssuer(t, IssuerOptions{})
	reg := NewRegistry(t, RegistryOptions{Auth: ti})

	resp, err := http.Get(reg.URL + "/v2/library/app/manifests/latest")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", resp.StatusCode)
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	for _, want := range []string{`realm="` + ti.Realm + `"`, `service="` + ti.Service + `"`, `scope="repository:library/app:pull"`} {
		if !strings.Contains(challenge, want) {
			t.Errorf("challenge %q lacks %s", challenge, want)
		}
	}
}

// TestHandlerServesFakeCDN is the setup relay tests use for upstreams that
// redirect blob downloads to a CDN: Wrap redirects, the CDN serves from
// Handler() without credentials of its own.
func TestHandlerServesFakeCDN(t *testing.T) {
	t.Parallel()
	ti := NewTokenIssuer(t, IssuerOptions{PrivateRepos: []string{"private/*"}})
	var reg *Registry
	var cdnHits atomic.Int64
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cdnHits.Add(1)
		if r.Header.Get("Authorization") != "" {
			t.Errorf("CDN got an Authorization header for %s", r.URL.Path)
		}
		reg.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(cdn.Close)
	reg = NewRegistry(t, RegistryOptions{Auth: ti, Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:") && r.Header.Get("Authorization") != "" {
				http.Redirect(w, r, cdn.URL+r.URL.Path, http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	want := PushImage(t, reg, "private/app:v1", RandomImage(t, 2, 256))

	img, err := remote.Image(mustRef(t, reg, "private/app:v1"), pullOptions(t, ti.AdminAuth())...)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := img.Digest(); got != want {
		t.Errorf("digest = %s, want %s", got, want)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("read layer via CDN: %v", err)
		}
	}
	if cdnHits.Load() == 0 {
		t.Error("no blob went through the CDN")
	}
}
