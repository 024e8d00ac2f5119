package cache

import (
	"sync"
	"time"
)

// Tags maps a tag, as one client asked for it (the Accept header decides
// between a manifest list and a single manifest), to the digest the
// upstream answered with and when.
type Tags struct {
	mu    sync.Mutex
	known map[string]TagEntry
}

// TagEntry is one remembered tag resolution.
type TagEntry struct {
	Digest  string
	Fetched time.Time
}

// maxTags bounds the table; it is emptied when full.
const maxTags = 65536

// NewTags returns an empty tag table.
func NewTags() *Tags { return &Tags{known: map[string]TagEntry{}} }

// TagKey identifies a tag request.
func TagKey(route, repo, tag, accept string) string {
	return route + "\x00" + repo + "\x00" + tag + "\x00" + accept
}

// Put remembers that key resolved to digest now.
func (t *Tags) Put(key, digest string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.known) >= maxTags {
		t.known = map[string]TagEntry{}
	}
	t.known[key] = TagEntry{digest, time.Now()}
}

// Get returns the entry for key if it is younger than maxAge.
func (t *Tags) Get(key string, maxAge time.Duration) (TagEntry, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.known[key]
	if !ok || time.Since(e.Fetched) > maxAge {
		return TagEntry{}, false
	}
	return e, true
}
