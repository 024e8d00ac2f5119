// Package lru is the relay's one bounded, expiring in-memory table: tag
// resolutions, authorization decisions, upstream tokens, origin lookups.
package lru

import (
	"time"

	hlru "github.com/hashicorp/golang-lru/v2"
)

// Cache maps strings to values of type V, each stamped with when it was
// written. A maintained LRU bounds it: when full, the least recently used
// entry goes, not the whole table. golang-lru's expirable variant is not
// used because it reads the wall clock and has one TTL, while callers
// judge entries against ages of their own (a tag's TTL and stale bound, a
// token's lifetime) and tests need their own clock; so callers pass the
// time and the age.
type Cache[V any] struct {
	lru *hlru.Cache[string, stamped[V]]
}

type stamped[V any] struct {
	v  V
	at time.Time
}

// New returns an empty table of at most size entries; size must be
// positive (callers pass constants).
func New[V any](size int) *Cache[V] {
	c, err := hlru.New[string, stamped[V]](size)
	if err != nil {
		panic(err) // only for a size <= 0
	}
	return &Cache[V]{lru: c}
}

// Put stores v under key as written at now.
func (c *Cache[V]) Put(key string, v V, now time.Time) { c.lru.Add(key, stamped[V]{v, now}) }

// Get returns the value for key and when it was written, if that was at
// most maxAge before now.
func (c *Cache[V]) Get(key string, maxAge time.Duration, now time.Time) (V, time.Time, bool) {
	s, ok := c.lru.Get(key)
	if !ok || now.Sub(s.at) > maxAge {
		var zero V
		return zero, time.Time{}, false
	}
	return s.v, s.at, true
}

// Len is the number of entries, expired ones included.
func (c *Cache[V]) Len() int { return c.lru.Len() }

// Now returns now(), or the wall clock if now is nil: the clock of a
// table's owner, which tests replace.
func Now(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}
