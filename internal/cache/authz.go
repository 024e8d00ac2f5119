package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/registry-relay/registry-relay/internal/lru"
)

// Authz remembers whether the upstream lets a client identity read a
// repository, so that cached content is served only to clients the
// upstream itself would serve. A decision is kept for ttl; concurrent
// checks for one key make one upstream request.
type Authz struct {
	// Now is the clock decisions age by; nil means time.Now.
	Now   func() time.Time
	ttl   time.Duration
	known *lru.Cache[bool]
	group singleflight.Group
}

// maxDecisions bounds the table; the least recently used go first.
const maxDecisions = 16384

// NewAuthz returns an empty decision table.
func NewAuthz(ttl time.Duration) *Authz {
	return &Authz{ttl: ttl, known: lru.New[bool](maxDecisions)}
}

// Key identifies a client identity for a repository of a route. The
// Authorization header is hashed: the table never holds a token.
func Key(route, repo, authorization string) string {
	id := "anonymous"
	if authorization != "" {
		sum := sha256.Sum256([]byte(authorization))
		id = hex.EncodeToString(sum[:12])
	}
	return route + "\x00" + repo + "\x00" + id
}

// Record stores what an upstream answer showed about key.
func (a *Authz) Record(key string, allowed bool) {
	a.known.Put(key, allowed, lru.Now(a.Now))
}

// Known returns a decision younger than maxAge.
func (a *Authz) Known(key string, maxAge time.Duration) (allowed, ok bool) {
	allowed, _, ok = a.known.Get(key, maxAge, lru.Now(a.Now))
	return allowed, ok
}

// Allowed answers from a fresh decision, or asks check (one call per key
// at a time) and records its answer. A check that fails is not recorded
// and denies: without the upstream's word, nothing cached is served.
func (a *Authz) Allowed(ctx context.Context, key string, check func(context.Context) (bool, error)) bool {
	if allowed, ok := a.Known(key, a.ttl); ok {
		return allowed
	}
	v, err, _ := a.group.Do(key, func() (any, error) {
		allowed, err := check(context.WithoutCancel(ctx))
		if err == nil {
			a.Record(key, allowed)
		}
		return allowed, err
	})
	return err == nil && v.(bool)
}
