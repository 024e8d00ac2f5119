package cache

import (
	"context"
	"io"
)

// Tiered puts a local disk in front of a shared store (RELAY_CACHE_DIR
// with RELAY_CACHE_S3_*): hits come from the disk, misses from the shared
// store, and what the relay fills is published to both, so that a new
// replica finds it in the shared store and a warm one on its disk.
type Tiered struct {
	Local  *Disk
	Shared Store
}

var _ Store = (*Tiered)(nil)

// Open looks on the disk first, then in the shared store.
func (t *Tiered) Open(ctx context.Context, dg string) (Content, error) {
	if c, err := t.Local.Open(ctx, dg); err == nil {
		return c, nil
	}
	return t.Shared.Open(ctx, dg)
}

// Create writes to the disk and, at Commit, copies what verified there to
// the shared store. A disk without room steps aside: the shared store is
// written alone.
func (t *Tiered) Create(ctx context.Context, dg string, meta Meta) (Writer, error) {
	lw, err := t.Local.Create(ctx, dg, meta)
	if err != nil {
		return t.Shared.Create(ctx, dg, meta)
	}
	return &tieredWriter{Writer: lw, t: t, ctx: context.WithoutCancel(ctx), digest: dg, meta: meta}, nil
}

type tieredWriter struct {
	Writer
	t      *Tiered
	ctx    context.Context
	digest string
	meta   Meta
}

// Commit publishes on the disk (which verifies), then in the shared
// store; the shared store's failure is reported, the disk's entry stays.
func (w *tieredWriter) Commit() error {
	if err := w.Writer.Commit(); err != nil {
		return err
	}
	content, err := w.t.Local.Open(w.ctx, w.digest)
	if err != nil {
		return err
	}
	defer content.Close()
	sw, err := w.t.Shared.Create(w.ctx, w.digest, w.meta)
	if err != nil {
		return err
	}
	if _, err := io.Copy(sw, content); err != nil {
		sw.Abort()
		return err
	}
	return sw.Commit()
}
