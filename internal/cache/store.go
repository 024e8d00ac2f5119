// Package cache is registry-relay's pull-through cache: content-addressed
// storage of blobs and manifests, verified before anything is published,
// shared by concurrent pulls while it fills, and bounded by LRU eviction.
package cache

import (
	"context"
	"errors"
	"io"
	"slices"
	"time"
)

// ErrNotFound means the store holds no such digest.
var ErrNotFound = errors.New("not in cache")

// ErrDigestMismatch means bytes did not hash to the digest they were
// stored under; they are discarded.
var ErrDigestMismatch = errors.New("content does not match its digest")

// ErrNoSpace means content cannot fit under the store's bound even after
// evicting everything published: the caller steps aside and streams from
// the upstream without caching.
var ErrNoSpace = errors.New("no room in the cache")

// Meta is what the cache keeps beside content.
type Meta struct {
	// Size is the content's length; given to Create, the expected length
	// (the upstream's Content-Length), or 0 or less if unknown.
	Size        int64
	ContentType string
	// Stored is when the content was first published.
	Stored time.Time
	// Routes are the routes whose upstreams supplied these verified bytes:
	// content is served through a route only if that route's own upstream
	// provided it. Entries written before provenance was kept have none.
	Routes []string `json:",omitempty"`
}

// From reports whether route's upstream supplied the content.
func (m Meta) From(route string) bool { return slices.Contains(m.Routes, route) }

// merged is m updated by a later verified write of the same bytes: the
// provenance grows, and a specific media type (a manifest's) replaces only
// the generic one a blob pull of the same bytes brought, never another
// specific one: a second route's upstream does not get to change what
// the first route's clients are told the content is.
func (m Meta) merged(later Meta) Meta {
	for _, r := range later.Routes {
		if !m.From(r) {
			m.Routes = append(m.Routes, r)
		}
	}
	slices.Sort(m.Routes)
	if ct := later.ContentType; ct != "" && ct != "application/octet-stream" && (m.ContentType == "" || m.ContentType == "application/octet-stream") {
		m.ContentType = ct
	}
	m.Size = later.Size
	return m
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
// the interface is what an object-storage backend implements, so every
// call carries the request's context: a remote store's calls are bounded
// by it and end with it.
type Store interface {
	// Open returns published content, or ErrNotFound.
	Open(ctx context.Context, digest string) (Content, error)
	// Create starts writing content for digest, reserving meta.Size
	// bytes when known (ErrNoSpace if they cannot fit). Committing bytes
	// for a digest already published keeps the published content and
	// adds meta.Routes to its provenance: the new bytes were verified
	// against the same digest, so they are the same content.
	Create(ctx context.Context, digest string, meta Meta) (Writer, error)
}
