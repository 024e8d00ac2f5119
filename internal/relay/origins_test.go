package relay

import (
	"context"
	"errors"
	"net"
	"net/url"
	"sync/atomic"
	"testing"
	"time"
)

// TestOriginLookupsExpire: an origin's lookup is reused for its TTL (a
// failed one for the shorter failure TTL) on the table's clock, then
// made again.
func TestOriginLookupsExpire(t *testing.T) {
	var dials atomic.Int32
	o := newOrigins()
	o.resolver = &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		dials.Add(1)
		return nil, errors.New("no DNS in tests")
	}}
	now := time.Unix(1_000_000, 0)
	o.now = func() time.Time { return now }
	u := &url.URL{Scheme: "https", Host: "registry.example"}
	lookups := func() int32 {
		before := dials.Load()
		if o.private(context.Background(), u) {
			t.Fatal("a failed lookup counted as private")
		}
		return dials.Load() - before
	}
	if lookups() == 0 {
		t.Fatal("first use: no lookup")
	}
	now = now.Add(originFailureTTL - time.Second)
	if n := lookups(); n != 0 {
		t.Errorf("within the failure TTL: %d dials, want the lookup reused", n)
	}
	now = now.Add(time.Second)
	if lookups() == 0 {
		t.Error("past the failure TTL: the failed lookup was reused")
	}
}
