package cache

import (
	"context"
	// The hashes paths admits, linked in for go-digest.
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// Create starts a temporary file that Commit verifies and publishes. The
// expected size is reserved against the bound before any byte is written.
func (d *Disk) Create(_ context.Context, dg string, meta Meta) (Writer, error) {
	cpath, mpath, err := d.paths(dg)
	if err != nil {
		return nil, err
	}
	reserved := max(meta.Size, 0)
	if err := d.reserve(reserved); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(d.dir, "tmp"), "fill-*")
	if err != nil {
		d.unreserve(reserved)
		return nil, err
	}
	h := digest.Digest(dg).Algorithm().Hash()
	return &diskWriter{d: d, f: f, h: h, digest: dg, cpath: cpath, mpath: mpath, meta: meta, reserved: reserved}, nil
}

type diskWriter struct {
	d            *Disk
	f            *os.File
	h            hash.Hash
	digest       string
	cpath, mpath string
	meta         Meta
	written      int64
	reserved     int64 // bytes this writer holds in the store's accounting
	done         bool
}

// Write grows the reservation as bytes arrive past it (a transfer of
// unknown length), so spools never take more disk than the bound allows.
func (w *diskWriter) Write(p []byte) (int, error) {
	if over := w.written + int64(len(p)) - w.reserved; over > 0 {
		if err := w.d.reserve(over); err != nil {
			return 0, err
		}
		w.reserved += over
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.written += int64(n)
	return n, err
}

func (w *diskWriter) Commit() error {
	if w.done {
		return errors.New("cache writer already finished")
	}
	defer w.Abort()
	want := digest.Digest(w.digest)
	if got := digest.NewDigest(want.Algorithm(), w.h); got != want {
		return fmt.Errorf("%w: want %s, got %s", ErrDigestMismatch, w.digest, got)
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	w.meta.Size, w.meta.Stored = w.written, time.Now()
	if err := w.d.publish(w); err != nil {
		return err
	}
	w.d.evict()
	return nil
}

// publish renames verified content into place, or, if the digest is
// already there, keeps it and merges the new provenance into its sidecar.
func (d *Disk) publish(w *diskWriter) error {
	d.files.Lock()
	defer d.files.Unlock()
	meta := w.meta
	_, statErr := os.Stat(w.cpath)
	exists := statErr == nil
	if exists {
		old := readMeta(w.mpath)
		if old.Stored.IsZero() {
			old.Stored = meta.Stored
		}
		meta = old.merged(meta)
	}
	if err := os.MkdirAll(filepath.Dir(w.cpath), 0o750); err != nil {
		return err
	}
	// The sidecar first, replaced atomically: content without meta is
	// served to no route, meta without content is never looked at.
	if err := d.writeMeta(w.mpath, meta); err != nil {
		return err
	}
	if !exists {
		if err := os.Rename(w.f.Name(), w.cpath); err != nil {
			return err
		}
	}
	d.unreserve(w.reserved)
	w.reserved, w.done = 0, true
	os.Remove(w.f.Name()) // the duplicate, when the content was already there
	d.touch(w.digest, w.written)
	return nil
}

func (d *Disk) writeMeta(path string, m Meta) error {
	raw, err := json.Marshal(m)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(d.dir, "tmp"), "meta-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(raw)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
	}
	return werr
}

// Spool is the temporary file being written, which concurrent readers of
// a fill follow as it grows.
func (w *diskWriter) Spool() string { return w.f.Name() }

func (w *diskWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.f.Close()
	os.Remove(w.f.Name())
	w.d.unreserve(w.reserved)
	w.reserved = 0
}
