package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// platforms of the seeded images, so `docker pull` works on either kind of host.
var platforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
}

// seed pushes repo:tag to reg: a Docker manifest list with one image per
// platform, each a single gzip tar layer holding a file that names the
// image, so every seeded image has its own digests.
func seed(ctx context.Context, reg http.Handler, repo, tag string) error {
	index := v1.IndexManifest{SchemaVersion: 2, MediaType: types.DockerManifestList}
	for _, p := range platforms {
		layer, diffID, err := helloLayer(fmt.Sprintf("hello from %s:%s on %s/%s\n", repo, tag, p.OS, p.Architecture))
		if err != nil {
			return fmt.Errorf("building %s:%s: %w", repo, tag, err)
		}
		config := mustJSON(v1.ConfigFile{
			OS: p.OS, Architecture: p.Architecture,
			RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{diffID}},
		})
		manifest := mustJSON(v1.Manifest{
			SchemaVersion: 2,
			MediaType:     types.DockerManifestSchema2,
			Config:        descriptor(types.DockerConfigJSON, config),
			Layers:        []v1.Descriptor{descriptor(types.DockerLayer, layer)},
		})
		for _, blob := range [][]byte{layer, config} {
			if err := pushBlob(ctx, reg, repo, blob); err != nil {
				return err
			}
		}
		if err := pushManifest(ctx, reg, repo, digest(manifest).String(), types.DockerManifestSchema2, manifest); err != nil {
			return err
		}
		d := descriptor(types.DockerManifestSchema2, manifest)
		d.Platform = &p
		index.Manifests = append(index.Manifests, d)
	}
	return pushManifest(ctx, reg, repo, tag, types.DockerManifestList, mustJSON(index))
}

// helloLayer is a gzip tar holding the file hello with text in it, and
// the digest of the uncompressed tar (the config's diff ID).
func helloLayer(text string) ([]byte, v1.Hash, error) {
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	if err := tw.WriteHeader(&tar.Header{Name: "hello", Mode: 0o644, Size: int64(len(text))}); err != nil {
		return nil, v1.Hash{}, err
	}
	if _, err := tw.Write([]byte(text)); err != nil {
		return nil, v1.Hash{}, err
	}
	if err := tw.Close(); err != nil {
		return nil, v1.Hash{}, err
	}
	var layer bytes.Buffer
	zw := gzip.NewWriter(&layer)
	if _, err := zw.Write(tarball.Bytes()); err != nil {
		return nil, v1.Hash{}, err
	}
	if err := zw.Close(); err != nil {
		return nil, v1.Hash{}, err
	}
	return layer.Bytes(), digest(tarball.Bytes()), nil
}

// pushBlob is a monolithic upload: one POST with the digest and the content.
func pushBlob(ctx context.Context, reg http.Handler, repo string, blob []byte) error {
	target := "/v2/" + repo + "/blobs/uploads/?digest=" + digest(blob).String()
	return push(ctx, reg, http.MethodPost, target, "application/octet-stream", blob)
}

func pushManifest(ctx context.Context, reg http.Handler, repo, ref string, mediaType types.MediaType, manifest []byte) error {
	return push(ctx, reg, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, string(mediaType), manifest)
}

// push hands reg the request directly rather than over a socket.
func push(ctx context.Context, reg http.Handler, method, target, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	rw := &statusWriter{header: http.Header{}}
	reg.ServeHTTP(rw, req)
	if rw.status != http.StatusCreated {
		return fmt.Errorf("seeding: %s %s: status %d", method, target, rw.status)
	}
	return nil
}

// statusWriter keeps the status of a response and drops its body.
type statusWriter struct {
	header http.Header
	status int
}

func (w *statusWriter) Header() http.Header { return w.header }
func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *statusWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return len(b), nil
}

func descriptor(mediaType types.MediaType, content []byte) v1.Descriptor {
	return v1.Descriptor{MediaType: mediaType, Size: int64(len(content)), Digest: digest(content)}
}

func digest(content []byte) v1.Hash {
	sum := sha256.Sum256(content)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// mustJSON marshals the manifest and config structs above, which cannot fail.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
