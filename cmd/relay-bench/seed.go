package main

import (
	"context"
	"fmt"
	"math/rand/v2"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// Repositories and tags seeded on both registries. Two-segment names, so
// neither relay route rewrites them.
const (
	bigRepo   = "bench/big"
	smallRepo = "bench/small"
	smallTag  = "latest"
)

// blob is a seeded layer: clients verify what they read against it.
type blob struct {
	digest string
	size   int64
}

// seed holds what the benchmark pushed.
type seed struct {
	large, stream blob // 512 MiB (throughput) and 64 MiB (memory, cold pulls) layers
}

// seedRegistry pushes one image per big layer and a small image whose
// manifest the latency runs fetch. The layers are static (not gzip'd)
// random bytes: generating and hashing 576 MiB this way takes about a
// second, where go-containerregistry's random.Layer would gzip them.
func seedRegistry(ctx context.Context, url string, largeSize, streamSize int64) (seed, error) {
	reg := relaytest.External(url, nil)
	var s seed
	for _, l := range []struct {
		tag  string
		size int64
		out  *blob
	}{{"large", largeSize, &s.large}, {"stream", streamSize, &s.stream}} {
		b, err := pushLayerImage(ctx, reg, bigRepo+":"+l.tag, l.size, uint64(l.size))
		if err != nil {
			return s, err
		}
		*l.out = b
	}
	if err := pushSmall(ctx, reg); err != nil {
		return s, err
	}
	return s, nil
}

// pushSmall pushes the small image whose manifest is measured.
func pushSmall(ctx context.Context, reg *relaytest.Registry) error {
	img, err := relaytest.NewRandomImage(1, 1024)
	if err != nil {
		return err
	}
	_, err = reg.PushImage(ctx, smallRepo+":"+smallTag, img)
	return err
}

func pushLayerImage(ctx context.Context, reg *relaytest.Registry, ref string, size int64, seedValue uint64) (blob, error) {
	data := randomBytes(size, seedValue)
	layer := static.NewLayer(data, types.DockerLayer)
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return blob{}, err
	}
	digest, err := layer.Digest()
	if err != nil {
		return blob{}, err
	}
	if _, err := reg.PushImage(ctx, ref, img); err != nil {
		return blob{}, fmt.Errorf("seeding %s: %w", ref, err)
	}
	return blob{digest: digest.String(), size: size}, nil
}

// randomBytes is incompressible data, so no hop can win by compressing.
func randomBytes(n int64, seedValue uint64) []byte {
	var key [32]byte
	key[0], key[1] = byte(seedValue), byte(seedValue>>8)
	r := rand.NewChaCha8(key)
	b := make([]byte, n)
	_, _ = r.Read(b)
	return b
}
