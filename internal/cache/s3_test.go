//go:build s3

package cache_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/opencontainers/go-digest"

	"github.com/registry-relay/registry-relay/internal/cache"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// The shared store against a real S3 server (SeaweedFS, `make s3`).
func TestS3Store(t *testing.T) {
	srv := relaytest.StartS3(t, "relay-cache")
	store := cache.NewS3(srv.Client(), srv.Bucket, "test/", t.TempDir())
	ctx := t.Context()
	if err := store.CheckBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cache.NewS3(srv.Client(), "no-such-bucket", "", t.TempDir()).CheckBucket(ctx); !errors.Is(err, cache.ErrNoBucket) {
		t.Errorf("a missing bucket: %v, want ErrNoBucket", err)
	}
	blob := make([]byte, 3<<20)
	_, _ = rand.Read(blob)
	dg := digest.FromBytes(blob).String()
	put := func(route string, data []byte) error {
		w, err := store.Create(ctx, dg, cache.Meta{Size: int64(len(data)), ContentType: "application/octet-stream", Routes: []string{route}})
		if err != nil {
			return err
		}
		if _, err := w.Write(data); err != nil {
			w.Abort()
			return err
		}
		return w.Commit()
	}

	t.Run("wrong bytes are never published", func(t *testing.T) {
		if err := put("hub", append(bytes.Clone(blob[:len(blob)-1]), blob[len(blob)-1]^1)); !errors.Is(err, cache.ErrDigestMismatch) {
			t.Fatalf("commit of wrong bytes: %v", err)
		}
		if _, err := store.Open(ctx, dg); !errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("after a refused commit: %v, want ErrNotFound", err)
		}
	})
	t.Run("nothing is visible before the commit", func(t *testing.T) {
		w, err := store.Create(ctx, dg, cache.Meta{Size: int64(len(blob)), Routes: []string{"hub"}})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(blob[:1<<20])
		if _, err := store.Open(ctx, dg); !errors.Is(err, cache.ErrNotFound) {
			t.Errorf("half-written content is visible: %v", err)
		}
		w.Abort()
	})
	t.Run("concurrent commits write one object", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 5)
		for i := range errs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = put("hub", blob) }()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
		}
		c, err := store.Open(ctx, dg)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		meta := c.Meta()
		c.Close()
		if !bytes.Equal(got, blob) || meta.Size != int64(len(blob)) || !meta.From("hub") {
			t.Fatalf("published object: %d bytes, meta %+v", len(got), meta)
		}
	})
	t.Run("a second route's verified bytes add it to the provenance", func(t *testing.T) {
		if err := put("twin", blob); err != nil {
			t.Fatal(err)
		}
		c, err := store.Open(ctx, dg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if m := c.Meta(); !m.From("hub") || !m.From("twin") {
			t.Fatalf("routes %v, want hub and twin", m.Routes)
		}
		// Ranges read from the store (ServeContent seeks).
		if _, err := c.Seek(1<<20, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		part := make([]byte, 100)
		if _, err := io.ReadFull(c, part); err != nil || !bytes.Equal(part, blob[1<<20:1<<20+100]) {
			t.Fatalf("read after seek: %v", err)
		}
	})
	t.Run("objects are content-addressed under the prefix", func(t *testing.T) {
		d := digest.Digest(dg)
		key := "test/blobs/sha256/" + d.Encoded()[:2] + "/" + d.Encoded()
		if _, err := srv.Client().StatObject(context.Background(), srv.Bucket, key, minio.StatObjectOptions{}); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	})
	t.Run("a stopped store is an error, not a hang", func(t *testing.T) {
		srv.Stop()
		if _, err := store.Open(ctx, dg); err == nil || errors.Is(err, cache.ErrNotFound) {
			t.Fatalf("Open with the store down: %v", err)
		}
	})
}
