package relaytest

import (
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// indexPlatforms are the platforms of the images in the random indexes.
var indexPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// PushImage writes img to repoAndTag ("repo:tag" or "repo@digest") on reg,
// as the admin user if reg has auth, and returns the manifest digest.
func PushImage(t testing.TB, reg *Registry, repoAndTag string, img v1.Image) v1.Hash {
	t.Helper()
	if err := remote.Write(reg.reference(t, repoAndTag), img, reg.pushOptions(t)...); err != nil {
		t.Fatalf("relaytest: push image %s: %v", repoAndTag, err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatalf("relaytest: image digest: %v", err)
	}
	return digest
}

// PushIndex writes idx and all its images to repoAndTag on reg, as the admin
// user if reg has auth, and returns the index digest.
func PushIndex(t testing.TB, reg *Registry, repoAndTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	if err := remote.WriteIndex(reg.reference(t, repoAndTag), idx, reg.pushOptions(t)...); err != nil {
		t.Fatalf("relaytest: push index %s: %v", repoAndTag, err)
	}
	digest, err := idx.Digest()
	if err != nil {
		t.Fatalf("relaytest: index digest: %v", err)
	}
	return digest
}

func (r *Registry) reference(t testing.TB, repoAndTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repoAndTag, name.Insecure)
	if err != nil {
		t.Fatalf("relaytest: parse reference %q: %v", repoAndTag, err)
	}
	return ref
}

func (r *Registry) pushOptions(t testing.TB) []remote.Option {
	opts := []remote.Option{
		remote.WithContext(t.Context()),
		remote.WithTransport(ClientTransport(t)),
	}
	if r.auth != nil {
		opts = append(opts, remote.WithAuth(r.auth.AdminAuth()))
	}
	return opts
}

// RandomImage returns a Docker v2 schema 2 image with random layers.
func RandomImage(t testing.TB, layers int, layerSize int64) v1.Image {
	t.Helper()
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		t.Fatalf("relaytest: random image: %v", err)
	}
	return img
}

// RandomMultiArchIndex returns a Docker manifest list
// (application/vnd.docker.distribution.manifest.list.v2+json) with Docker v2
// images for linux/amd64 and linux/arm64.
func RandomMultiArchIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	return randomIndex(t, types.DockerManifestList, func() v1.Image { return RandomImage(t, 2, 1024) })
}

// RandomOCIIndex returns an OCI image index with OCI images for linux/amd64
// and linux/arm64.
func RandomOCIIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	return randomIndex(t, types.OCIImageIndex, func() v1.Image { return randomOCIImage(t, 2, 1024) })
}

func randomIndex(t testing.TB, mediaType types.MediaType, newImage func() v1.Image) v1.ImageIndex {
	t.Helper()
	adds := make([]mutate.IndexAddendum, 0, len(indexPlatforms))
	for _, p := range indexPlatforms {
		img := withPlatform(t, newImage(), p)
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mediaType), adds...)
}

// randomOCIImage uses OCI media types throughout: registries and clients
// that check consistency reject Docker layers in an OCI manifest.
func randomOCIImage(t testing.TB, layers int, layerSize int64) v1.Image {
	t.Helper()
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range layers {
		layer, err := random.Layer(layerSize, types.OCILayer)
		if err != nil {
			t.Fatalf("relaytest: random layer: %v", err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			t.Fatalf("relaytest: append layer: %v", err)
		}
	}
	return img
}

// withPlatform records p in the image config too, so clients that check the
// config against the index descriptor agree.
func withPlatform(t testing.TB, img v1.Image, p v1.Platform) v1.Image {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatalf("relaytest: config file: %v", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatalf("relaytest: set platform: %v", err)
	}
	return img
}
