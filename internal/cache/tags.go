package cache

import (
	"time"

	"github.com/registry-relay/registry-relay/internal/lru"
)

// Tags maps a tag, as one client asked for it (the Accept header decides
// between a manifest list and a single manifest), to the digest the
// upstream answered with and when.
type Tags struct {
	// Now is the clock resolutions age by; nil means time.Now.
	Now   func() time.Time
	known *lru.Cache[string]
}

// TagEntry is one remembered tag resolution.
type TagEntry struct {
	Digest  string
	Fetched time.Time
}

// maxTags bounds the table; the least recently used go first.
const maxTags = 65536

// NewTags returns an empty tag table.
func NewTags() *Tags { return &Tags{known: lru.New[string](maxTags)} }

// TagKey identifies a tag request.
func TagKey(route, repo, tag, accept string) string {
	return route + "\x00" + repo + "\x00" + tag + "\x00" + accept
}

// Put remembers that key resolved to digest now.
func (t *Tags) Put(key, digest string) { t.known.Put(key, digest, lru.Now(t.Now)) }

// Get returns the entry for key if it is younger than maxAge.
func (t *Tags) Get(key string, maxAge time.Duration) (TagEntry, bool) {
	d, at, ok := t.known.Get(key, maxAge, lru.Now(t.Now))
	return TagEntry{d, at}, ok
}
