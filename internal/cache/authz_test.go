package cache

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

// TestAuthzDecisionsExpire: a decision is reused within the TTL, asked
// again after it, and a failed check is neither allowed nor remembered.
func TestAuthzDecisionsExpire(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	a := NewAuthz(time.Minute)
	a.Now = clock.now
	asked := 0
	answer, fail := true, false
	check := func(context.Context) (bool, error) {
		asked++
		if fail {
			return true, errors.New("upstream answered 503")
		}
		return answer, nil
	}
	ctx := context.Background()
	if !a.Allowed(ctx, "k", check) || !a.Allowed(ctx, "k", check) || asked != 1 {
		t.Fatalf("within the TTL: asked %d times, want 1", asked)
	}
	clock.advance(59 * time.Second)
	if allowed, ok := a.Known("k", time.Minute); !ok || !allowed {
		t.Error("decision forgotten before the TTL")
	}
	clock.advance(2 * time.Second)
	if _, ok := a.Known("k", time.Minute); ok {
		t.Error("decision known past the TTL")
	}
	answer = false
	if a.Allowed(ctx, "k", check) || asked != 2 {
		t.Errorf("past the TTL: allowed after the upstream said no, asked %d", asked)
	}
	clock.advance(2 * time.Minute)
	fail = true
	if a.Allowed(ctx, "k", check) {
		t.Error("a failed check allowed")
	}
	if _, ok := a.Known("k", time.Minute); ok {
		t.Error("a failed check was recorded")
	}
	fail, answer = false, true
	if !a.Allowed(ctx, "k", check) || asked != 4 {
		t.Errorf("after a failed check: asked %d, want the upstream asked again", asked)
	}
}

// TestTagsAgeByTheirClock: a resolution is served within maxAge only, so
// the TTL and the stale bound are each enforced.
func TestTagsAgeByTheirClock(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1000, 0)}
	tags := NewTags()
	tags.Now = clock.now
	tags.Put("k", "sha256:aa")
	clock.advance(30 * time.Second)
	if e, ok := tags.Get("k", time.Minute); !ok || e.Digest != "sha256:aa" || !e.Fetched.Equal(time.Unix(1000, 0)) {
		t.Errorf("within the TTL: %+v %v", e, ok)
	}
	clock.advance(31 * time.Second)
	if _, ok := tags.Get("k", time.Minute); ok {
		t.Error("served past the TTL")
	}
	if _, ok := tags.Get("k", time.Hour); !ok {
		t.Error("not served within the stale bound")
	}
	clock.advance(time.Hour)
	if _, ok := tags.Get("k", time.Hour); ok {
		t.Error("served past the stale bound")
	}
}

// TestTablesEvictLeastRecentlyUsed: a full table drops its oldest entry,
// not every decision at once.
func TestTablesEvictLeastRecentlyUsed(t *testing.T) {
	a := NewAuthz(time.Hour)
	a.Record("hot", true)
	for i := range maxDecisions {
		a.Record(fmt.Sprint(i), true)
		if i%1000 == 0 {
			a.Known("hot", time.Hour)
		}
	}
	if _, ok := a.Known("hot", time.Hour); !ok {
		t.Error("a recently used decision was dropped when the table filled")
	}
	if _, ok := a.Known("0", time.Hour); ok {
		t.Error("the least recently used decision survived a full table")
	}
}
