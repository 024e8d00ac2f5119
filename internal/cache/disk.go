package cache

import (
	"container/list"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
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
	total int64                    // published bytes
	// spooled is what writers in tmp/ hold or have reserved: a transfer
	// in progress takes disk like published content does.
	spooled int64

	// files serializes publishing and evicting, so that a sidecar merge
	// never races the removal of the entry it merges into.
	files sync.Mutex
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

// paths returns the content and meta paths of a digest. digest.Parse
// accepts only algorithms it can compute, with their exact lower-case hex
// encoding: nothing is stored that Commit cannot verify, and nothing
// outside dir is touched.
func (d *Disk) paths(dg string) (content, meta string, err error) {
	parsed, err := digest.Parse(dg)
	if err != nil {
		return "", "", fmt.Errorf("unsupported digest %q: %w", dg, err)
	}
	enc := parsed.Encoded()
	content = filepath.Join(d.dir, "content", parsed.Algorithm().String(), enc[:2], enc)
	return content, content + ".meta", nil
}

// Open returns published content and marks it recently used.
func (d *Disk) Open(_ context.Context, digest string) (Content, error) {
	cpath, mpath, err := d.paths(digest)
	if err != nil {
		return nil, ErrNotFound
	}
	f, err := os.Open(cpath)
	if err != nil {
		return nil, ErrNotFound
	}
	m := readMeta(mpath)
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

// readMeta reads a sidecar; a missing or unreadable one is an entry with
// no media type and no provenance, which no route is served.
func readMeta(path string) Meta {
	var m Meta
	if raw, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(raw, &m)
	}
	return m
}

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

// evict removes least recently used entries until the total fits. Readers
// that still have an evicted file open keep reading it (unlink semantics).
func (d *Disk) evict() {
	d.files.Lock()
	defer d.files.Unlock()
	d.mu.Lock()
	var victims []*entry
	for d.total+d.spooled > d.maxBytes && d.lru.Len() > 0 {
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

// Size is the disk the store takes: published content and the transfers
// being written (or reserved) in tmp/.
func (d *Disk) Size() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.total + d.spooled
}

// reserve claims n bytes for a transfer, evicting published entries to
// make room; it refuses what would not fit beside the other transfers.
func (d *Disk) reserve(n int64) error {
	if n <= 0 {
		return nil
	}
	d.mu.Lock()
	if d.spooled+n > d.maxBytes {
		d.mu.Unlock()
		return fmt.Errorf("%w: %d bytes wanted, %d of %d in transfers", ErrNoSpace, n, d.spooled, d.maxBytes)
	}
	d.spooled += n
	d.mu.Unlock()
	d.evict()
	return nil
}

func (d *Disk) unreserve(n int64) {
	d.mu.Lock()
	d.spooled -= n
	d.mu.Unlock()
}
