package relaytest

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// TestStandaloneAPI uses the constructors without testing.TB the way
// the conformance harness and the benchmark do, and checks that Close releases what they took;
// TestMain checks the goroutines.
func TestStandaloneAPI(t *testing.T) {
	t.Parallel()
	ti, err := StartTokenIssuer(IssuerOptions{
		Users:        map[string]string{"demo": "demo"},
		PrivateRepos: []string{"private/*"},
	}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ti.Close) // for early failures; the explicit Close below is what is tested
	bundleDir := filepath.Dir(ti.bundlePath)
	reg, err := StartRegistry(RegistryOptions{Auth: ti})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(reg.Close)
	idx, err := NewRandomIndex(types.DockerManifestList, 1, 256)
	if err != nil {
		t.Fatal(err)
	}
	want, err := reg.PushIndex(t.Context(), "private/hello:latest", idx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Index(mustRef(t, reg, "private/hello:latest"),
		pullOptions(t, &authn.Basic{Username: "demo", Password: "demo"})...)
	if err != nil {
		t.Fatalf("pull as demo: %v", err)
	}
	if d, _ := got.Digest(); d != want {
		t.Errorf("digest = %s, want %s", d, want)
	}

	for range 2 { // Close may be called more than once, and t.Cleanup calls it again
		reg.Close()
		ti.Close()
	}
	if _, err := os.Stat(bundleDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("bundle directory %s after Close: %v, want it removed", bundleDir, err)
	}
	if resp, err := http.Get(reg.URL + "/v2/"); err == nil {
		resp.Body.Close()
		t.Error("registry still answers after Close")
	}
}

func TestStartTokenIssuerKeepsCallerDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ti, err := StartTokenIssuer(IssuerOptions{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	ti.Close()
	if _, err := os.Stat(filepath.Join(dir, "rootcertbundle.pem")); err != nil {
		t.Errorf("bundle in caller's directory after Close: %v", err)
	}
}

func TestNewRandomIndex(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mediaType types.MediaType
		wantErr   bool
	}{
		{types.DockerManifestList, false},
		{types.OCIImageIndex, false},
		{types.DockerManifestSchema2, true},
		{"", true},
	}
	for _, tt := range tests {
		idx, err := NewRandomIndex(tt.mediaType, 1, 64)
		if (err != nil) != tt.wantErr {
			t.Errorf("NewRandomIndex(%q) error = %v, want error %v", tt.mediaType, err, tt.wantErr)
			continue
		}
		if err != nil {
			continue
		}
		if mt, _ := idx.MediaType(); mt != tt.mediaType {
			t.Errorf("NewRandomIndex(%q) media type = %s", tt.mediaType, mt)
		}
	}
}
