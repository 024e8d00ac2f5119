package lru

import (
	"strconv"
	"testing"
	"time"
)

func TestGetJudgesAge(t *testing.T) {
	c := New[string](4)
	t0 := time.Unix(1000, 0)
	c.Put("k", "v", t0)
	if v, at, ok := c.Get("k", time.Minute, t0.Add(time.Minute)); !ok || v != "v" || !at.Equal(t0) {
		t.Errorf("at the age bound: %q %v %v, want v written at t0", v, at, ok)
	}
	if _, _, ok := c.Get("k", time.Minute, t0.Add(time.Minute+time.Nanosecond)); ok {
		t.Error("entry returned past its age")
	}
	if _, _, ok := c.Get("missing", time.Hour, t0); ok {
		t.Error("missing key found")
	}
}

// TestFullTableDropsLeastRecentlyUsed: a full table forgets one entry,
// the least recently used, never everything.
func TestFullTableDropsLeastRecentlyUsed(t *testing.T) {
	const size = 8
	c := New[int](size)
	now := time.Unix(1000, 0)
	for i := range size {
		c.Put(strconv.Itoa(i), i, now)
	}
	c.Get("0", time.Hour, now) // 1 is now the least recently used
	c.Put("new", size, now)
	if c.Len() != size {
		t.Errorf("Len = %d, want %d", c.Len(), size)
	}
	if _, _, ok := c.Get("1", time.Hour, now); ok {
		t.Error("the least recently used entry survived a full table")
	}
	for _, k := range []string{"0", "2", "7", "new"} {
		if _, _, ok := c.Get(k, time.Hour, now); !ok {
			t.Errorf("entry %s dropped", k)
		}
	}
}

func TestNow(t *testing.T) {
	fixed := time.Unix(42, 0)
	if got := Now(func() time.Time { return fixed }); !got.Equal(fixed) {
		t.Errorf("Now(clock) = %v", got)
	}
	if got := Now(nil); time.Since(got) > time.Minute {
		t.Errorf("Now(nil) = %v, not the wall clock", got)
	}
}
