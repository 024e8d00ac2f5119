package cache

import (
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// recent is the package's one bounded, expiring table. A maintained LRU
// bounds it: when full, the least recently used entry goes, not the whole
// table. golang-lru's expirable variant is not used because it reads the
// wall clock and has one TTL, while tag resolutions are judged against
// two ages (the TTL and the stale bound) and tests need their own clock;
// so each entry carries when it was written and callers give the age.
type recent[V any] struct {
	lru *lru.Cache[string, stamped[V]]
}

type stamped[V any] struct {
	v  V
	at time.Time
}

func newRecent[V any](size int) recent[V] {
	c, err := lru.New[string, stamped[V]](size)
	if err != nil {
		panic(err) // only for a size <= 0, which the constants below rule out
	}
	return recent[V]{lru: c}
}

func (r recent[V]) put(key string, v V, now time.Time) { r.lru.Add(key, stamped[V]{v, now}) }

// get returns the value for key if it was written at most maxAge before now.
func (r recent[V]) get(key string, maxAge time.Duration, now time.Time) (V, time.Time, bool) {
	s, ok := r.lru.Get(key)
	if !ok || now.Sub(s.at) > maxAge {
		var zero V
		return zero, time.Time{}, false
	}
	return s.v, s.at, true
}

// clock returns now, or the wall clock if now is nil.
func clock(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}
