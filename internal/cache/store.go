// Package cache is registry-relay's pull-through cache: content-addressed
// storage of blobs and manifests, verified before anything is published,
// shared by concurrent pulls while it fills, and bounded by LRU eviction.
package cache

import (
	"errors"
	"io"
	"time"
)

// ErrNotFound means the store holds no such digest.
var ErrNotFound = errors.New("not in cache")

// ErrDigestMismatch means bytes did not hash to the digest they were
// stored under; they are discarded.
var ErrDigestMismatch = errors.New("content does not match its digest")

// Meta is what the cache keeps beside content.
type Meta struct {
	Size        int64
	ContentType string
	// Stored is when the content was published.
	Stored time.Time
}

// Content is a published entry opened for reading.
type Content interface {
	io.ReadSeekCloser
	Meta() Meta
}

// Writer receives content for one digest. Commit verifies the digest and
// publishes atomically; Abort (or a failed Commit) discards everything.
type Writer interface {
	io.Writer
	Commit() error
	Abort()
	// Spool names a local file holding what was written so far; fills
	// stream it to waiting clients before the content is published.
	Spool() string
}

// Store is content-addressed storage. The disk store is the one built in;
// the interface is what an object-storage backend would implement.
type Store interface {
	// Open returns published content, or ErrNotFound.
	Open(digest string) (Content, error)
	// Create starts writing content for digest.
	Create(digest string, meta Meta) (Writer, error)
}
