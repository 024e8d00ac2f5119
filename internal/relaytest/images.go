package relaytest

import (
	"context"
	"fmt"
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
	digest, err := reg.PushImage(t.Context(), repoAndTag, img)
	if err != nil {
		t.Fatalf("relaytest: %v", err)
	}
	return digest
}

// PushIndex writes idx and all its images to repoAndTag on reg, as the admin
// user if reg has auth, and returns the index digest.
func PushIndex(t testing.TB, reg *Registry, repoAndTag string, idx v1.ImageIndex) v1.Hash {
	t.Helper()
	digest, err := reg.PushIndex(t.Context(), repoAndTag, idx)
	if err != nil {
		t.Fatalf("relaytest: %v", err)
	}
	return digest
}

// PushImage is the package-level PushImage for programs without a
// testing.TB, such as the conformance harness.
func (r *Registry) PushImage(ctx context.Context, repoAndTag string, img v1.Image) (v1.Hash, error) {
	digest, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("image digest: %w", err)
	}
	err = r.push(ctx, repoAndTag, func(ref name.Reference, opts ...remote.Option) error {
		return remote.Write(ref, img, opts...)
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push image %s: %w", repoAndTag, err)
	}
	return digest, nil
}

// PushIndex is the package-level PushIndex for programs without a
// testing.TB, such as the conformance harness.
func (r *Registry) PushIndex(ctx context.Context, repoAndTag string, idx v1.ImageIndex) (v1.Hash, error) {
	digest, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("index digest: %w", err)
	}
	err = r.push(ctx, repoAndTag, func(ref name.Reference, opts ...remote.Option) error {
		return remote.WriteIndex(ref, idx, opts...)
	})
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push index %s: %w", repoAndTag, err)
	}
	return digest, nil
}

// push hands write a reference to repoAndTag on r and options that act as
// the admin user; the connections it opened are closed when it returns, so
// pushes leave no goroutines behind.
func (r *Registry) push(ctx context.Context, repoAndTag string, write func(name.Reference, ...remote.Option) error) error {
	ref, err := name.ParseReference(r.Host+"/"+repoAndTag, name.Insecure)
	if err != nil {
		return fmt.Errorf("parse reference %q: %w", repoAndTag, err)
	}
	rt, base := newClientTransport()
	defer base.CloseIdleConnections()
	opts := []remote.Option{remote.WithContext(ctx), remote.WithTransport(rt)}
	if r.auth != nil {
		opts = append(opts, remote.WithAuth(r.auth.AdminAuth()))
	}
	return write(ref, opts...)
}

// RandomImage returns a Docker v2 schema 2 image with random layers.
func RandomImage(t testing.TB, layers int, layerSize int64) v1.Image {
	t.Helper()
	img, err := NewRandomImage(layers, layerSize)
	if err != nil {
		t.Fatalf("relaytest: %v", err)
	}
	return img
}

// NewRandomImage is RandomImage for programs without a testing.TB. Each
// layer is a gzip-compressed tar holding one file of layerSize random
// bytes, so Docker and containerd can unpack it.
func NewRandomImage(layers int, layerSize int64) (v1.Image, error) {
	img, err := random.Image(layerSize, int64(layers))
	if err != nil {
		return nil, fmt.Errorf("random image: %w", err)
	}
	return img, nil
}

// RandomMultiArchIndex returns a Docker manifest list
// (application/vnd.docker.distribution.manifest.list.v2+json) with Docker v2
// images for linux/amd64 and linux/arm64.
func RandomMultiArchIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	return randomIndex(t, types.DockerManifestList)
}

// RandomOCIIndex returns an OCI image index with OCI images for linux/amd64
// and linux/arm64.
func RandomOCIIndex(t testing.TB) v1.ImageIndex {
	t.Helper()
	return randomIndex(t, types.OCIImageIndex)
}

func randomIndex(t testing.TB, mediaType types.MediaType) v1.ImageIndex {
	t.Helper()
	idx, err := NewRandomIndex(mediaType, 2, 1024)
	if err != nil {
		t.Fatalf("relaytest: %v", err)
	}
	return idx
}

// NewRandomIndex is RandomMultiArchIndex (mediaType
// types.DockerManifestList) or RandomOCIIndex (types.OCIImageIndex) for
// programs without a testing.TB, with layers random layers of layerSize
// bytes per image. The images use the media type family of the index, as
// clients that check consistency expect.
func NewRandomIndex(mediaType types.MediaType, layers int, layerSize int64) (v1.ImageIndex, error) {
	var newImage func(int, int64) (v1.Image, error)
	switch mediaType {
	case types.DockerManifestList:
		newImage = NewRandomImage
	case types.OCIImageIndex:
		newImage = randomOCIImage
	default:
		return nil, fmt.Errorf("random index: unsupported media type %q", mediaType)
	}
	adds := make([]mutate.IndexAddendum, 0, len(indexPlatforms))
	for _, p := range indexPlatforms {
		img, err := newImage(layers, layerSize)
		if err != nil {
			return nil, err
		}
		if img, err = withPlatform(img, p); err != nil {
			return nil, err
		}
		adds = append(adds, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return mutate.AppendManifests(mutate.IndexMediaType(empty.Index, mediaType), adds...), nil
}

// randomOCIImage uses OCI media types throughout: registries and clients
// that check consistency reject Docker layers in an OCI manifest.
func randomOCIImage(layers int, layerSize int64) (v1.Image, error) {
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	for range layers {
		layer, err := random.Layer(layerSize, types.OCILayer)
		if err != nil {
			return nil, fmt.Errorf("random layer: %w", err)
		}
		if img, err = mutate.AppendLayers(img, layer); err != nil {
			return nil, fmt.Errorf("append layer: %w", err)
		}
	}
	return img, nil
}

// withPlatform records p in the image config too, so clients that check the
// config against the index descriptor agree.
func withPlatform(img v1.Image, p v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set platform: %w", err)
	}
	return img, nil
}
