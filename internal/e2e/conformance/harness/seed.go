//go:build e2e

package main

import (
	"context"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

type seeded struct{ tags, manifests, blobs, referrers []string }

// seedReadOnly pushes an OCI index (two platforms) and a Docker image to
// repo and returns what the suite's OCI_RO_DATA_* variables need.
func seedReadOnly(reg *relaytest.Registry, repo string) (*seeded, error) {
	ctx := context.Background()
	out := &seeded{}
	addImage := func(img v1.Image) error {
		d, err := img.Digest()
		if err != nil {
			return err
		}
		out.manifests = append(out.manifests, d.String())
		m, err := img.Manifest()
		if err != nil {
			return err
		}
		out.blobs = append(out.blobs, m.Config.Digest.String())
		for _, l := range m.Layers {
			out.blobs = append(out.blobs, l.Digest.String())
		}
		return nil
	}
	idx, err := relaytest.NewRandomIndex(types.OCIImageIndex, 1, 512)
	if err != nil {
		return nil, err
	}
	idxDigest, err := reg.PushIndex(ctx, repo+":ro-index", idx)
	if err != nil {
		return nil, err
	}
	out.tags = append(out.tags, "ro-index")
	out.manifests = append(out.manifests, idxDigest.String())
	out.referrers = append(out.referrers, idxDigest.String())
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, desc := range im.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return nil, err
		}
		if err := addImage(img); err != nil {
			return nil, err
		}
	}
	img, err := relaytest.NewRandomImage(2, 512)
	if err != nil {
		return nil, err
	}
	if _, err := reg.PushImage(ctx, repo+":ro-image", img); err != nil {
		return nil, err
	}
	out.tags = append(out.tags, "ro-image")
	return out, addImage(img)
}
