package cache

import (
	"container/list"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Disk is a Store in a directory: content/<alg>/<hex[:2]>/<hex> with a
// .meta JSON sidecar, written under tmp/ and renamed into place. An
// in-memory LRU index, rebuilt from the directory at start, keeps the
// total size under a bound.
type Disk struct {
	dir      string
	maxBytes int64
	onEvict  func(bytes int64)

	mu    sync.Mutex
	lru   *list.List               // front: most recently used
	index map[string]*list.Element // digest -> element holding *entry
	total int64
}

type entry struct {
	digest string
	size   int64
}

var _ Store = (*Disk)(nil)

// OpenDisk opens (creating) a disk store under dir, bounded by maxBytes.
// onEvict, if not nil, is told the size of every evicted entry.
func OpenDisk(dir string, maxBytes int64, onEvict func(bytes int64)) (*Disk, error) {
	d := &Disk{dir: dir, maxBytes: maxBytes, onEvict: onEvict, lru: list.New(), index: map[string]*list.Element{}}
	for _, sub := range []string{"content", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o750); err != nil {
			return nil, fmt.Errorf("cache directory: %w", err)
		}
	}
	// Leftovers of transfers cut by a crash are never published.
	_ = os.RemoveAll(filepath.Join(dir, "tmp"))
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o750); err != nil {
		return nil, err
	}
	if err := d.scan(); err != nil {
		return nil, err
	}
	d.evict()
	return d, nil
}

// scan rebuilds the index, oldest modification first, so that eviction
// after a restart still prefers what was used longest ago.
func (d *Disk) scan() error {
	type found struct {
		digest string
		size   int64
		mod    time.Time
	}
	var all []found
	root := filepath.Join(d.dir, "content")
	err := filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() || strings.HasSuffix(path, ".meta") {
			return err
		}
		info, err := de.Info()
		if err != nil {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		parts := strings.Split(rel, string(filepath.Separator))
		if len(parts) != 3 {
			return nil
		}
		all = append(all, found{parts[0] + ":" + parts[2], info.Size(), info.ModTime()})
		return nil
	})
	if err != nil {
		return fmt.Errorf("scanning the cache: %w", err)
	}
	slices.SortFunc(all, func(a, b found) int { return a.mod.Compare(b.mod) })
	for _, f := range all {
		d.index[f.digest] = d.lru.PushFront(&entry{f.digest, f.size})
		d.total += f.size
	}
	return nil
}

// paths returns the content and meta paths of a digest; it refuses
// digests that are not "alg:hex", so nothing outside dir is touched.
func (d *Disk) paths(digest string) (content, meta string, err error) {
	alg, enc, ok := strings.Cut(digest, ":")
	if !ok || len(enc) < 8 || (alg != "sha256" && alg != "sha512") || strings.Trim(enc, "0123456789abcdef") != "" {
		return "", "", fmt.Errorf("unsupported digest %q", digest)
	}
	content = filepath.Join(d.dir, "content", alg, enc[:2], enc)
	return content, content + ".meta", nil
}

// Open returns published content and marks it recently used.
func (d *Disk) Open(digest string) (Content, error) {
	cpath, mpath, err := d.paths(digest)
	if err != nil {
		return nil, ErrNotFound
	}
	f, err := os.Open(cpath)
	if err != nil {
		return nil, ErrNotFound
	}
	var m Meta
	if raw, err := os.ReadFile(mpath); err == nil {
		_ = json.Unmarshal(raw, &m)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, ErrNotFound
	}
	m.Size = info.Size()
	d.touch(digest, m.Size)
	return &diskContent{File: f, meta: m}, nil
}

type diskContent struct {
	*os.File
	meta Meta
}

func (c *diskContent) Meta() Meta { return c.meta }

func (d *Disk) touch(digest string, size int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if el, ok := d.index[digest]; ok {
		d.lru.MoveToFront(el)
		return
	}
	d.index[digest] = d.lru.PushFront(&entry{digest, size})
	d.total += size
}

// Create starts a temporary file that Commit verifies and renames.
func (d *Disk) Create(digest string, meta Meta) (Writer, error) {
	cpath, mpath, err := d.paths(digest)
	if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(filepath.Join(d.dir, "tmp"), "fill-*")
	if err != nil {
		return nil, err
	}
	var h hash.Hash = sha256.New()
	if strings.HasPrefix(digest, "sha512:") {
		h = sha512.New()
	}
	return &diskWriter{d: d, f: f, h: h, digest: digest, cpath: cpath, mpath: mpath, meta: meta}, nil
}

type diskWriter struct {
	d            *Disk
	f            *os.File
	h            hash.Hash
	digest       string
	cpath, mpath string
	meta         Meta
	written      int64
	done         bool
}

func (w *diskWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.written += int64(n)
	return n, err
}

func (w *diskWriter) Commit() error {
	if w.done {
		return fmt.Errorf("cache writer already finished")
	}
	defer w.Abort()
	_, enc, _ := strings.Cut(w.digest, ":")
	if got := hex.EncodeToString(w.h.Sum(nil)); got != enc {
		return fmt.Errorf("%w: want %s, got %s", ErrDigestMismatch, w.digest, got)
	}
	if err := w.f.Close(); err != nil {
		return err
	}
	w.meta.Size, w.meta.Stored = w.written, time.Now()
	raw, _ := json.Marshal(w.meta)
	if err := os.MkdirAll(filepath.Dir(w.cpath), 0o750); err != nil {
		return err
	}
	// The sidecar first: content without meta is still servable, meta
	// without content is never looked at.
	if err := os.WriteFile(w.mpath, raw, 0o640); err != nil {
		return err
	}
	if err := os.Rename(w.f.Name(), w.cpath); err != nil {
		return err
	}
	w.done = true
	w.d.touch(w.digest, w.written)
	w.d.evict()
	return nil
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
}

// evict removes least recently used entries until the total fits. Readers
// that still have an evicted file open keep reading it (unlink semantics).
func (d *Disk) evict() {
	d.mu.Lock()
	var victims []*entry
	for d.total > d.maxBytes && d.lru.Len() > 0 {
		el := d.lru.Back()
		e := el.Value.(*entry)
		d.lru.Remove(el)
		delete(d.index, e.digest)
		d.total -= e.size
		victims = append(victims, e)
	}
	d.mu.Unlock()
	for _, e := range victims {
		if cpath, mpath, err := d.paths(e.digest); err == nil {
			os.Remove(cpath)
			os.Remove(mpath)
		}
		if d.onEvict != nil {
			d.onEvict(e.size)
		}
	}
}

// Size is the total size of published content.
func (d *Disk) Size() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total
}
