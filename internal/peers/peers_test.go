package peers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func ring(t *testing.T, self string, now func() time.Time, peers ...string) *Ring {
	t.Helper()
	r, err := New(peers, self, secret, now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOwnerIsAgreedAndStable(t *testing.T) {
	all := []string{"http://10.0.0.1:8080", "http://10.0.0.2:8080", "http://10.0.0.3:8080"}
	rings := []*Ring{ring(t, all[0], nil, all...), ring(t, all[1], nil, all...), ring(t, all[2], nil, all...)}
	owned := map[string]int{}
	for i := range 3000 {
		key := fmt.Sprintf("sha256:%064d", i)
		o, _ := rings[0].Owner(key)
		selves := 0
		for _, r := range rings {
			if other, self := r.Owner(key); other.String() != o.String() {
				t.Fatalf("replicas disagree on %s", key)
			} else if self {
				selves++
			}
		}
		if selves != 1 {
			t.Fatalf("%s has %d owners", key, selves)
		}
		owned[o.String()]++
	}
	for p, n := range owned {
		if n < 800 || n > 1200 {
			t.Errorf("%s owns %d of 3000 keys: the spread is uneven", p, n)
		}
	}
	// A peer leaving moves only its own keys.
	two := ring(t, all[0], nil, all[:2]...)
	for i := range 3000 {
		key := fmt.Sprintf("sha256:%064d", i)
		before, _ := rings[0].Owner(key)
		after, _ := two.Owner(key)
		if before.String() != all[2] && after.String() != before.String() {
			t.Fatalf("%s moved from %s to %s although its owner stayed", key, before, after)
		}
	}
}

func TestProof(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	r := ring(t, "http://a:1", clock, "http://a:1", "http://b:1")
	proof := r.Sign("GET", "dhcr.example.com", "/v2/library/x/blobs/sha256:ab")
	if !r.Verify(proof, "GET", "DHCR.example.com", "/v2/library/x/blobs/sha256:ab") {
		t.Fatal("a fresh proof was refused")
	}
	other, _ := New([]string{"http://a:1"}, "http://a:1", []byte("another secret, another secret, x"), clock)
	for name, ok := range map[string]bool{
		"other path":   r.Verify(proof, "GET", "dhcr.example.com", "/v2/library/y/blobs/sha256:ab"),
		"other host":   r.Verify(proof, "GET", "ghcr.example.com", "/v2/library/x/blobs/sha256:ab"),
		"other method": r.Verify(proof, "HEAD", "dhcr.example.com", "/v2/library/x/blobs/sha256:ab"),
		"other secret": other.Verify(proof, "GET", "dhcr.example.com", "/v2/library/x/blobs/sha256:ab"),
		"garbage":      r.Verify("nonsense", "GET", "dhcr.example.com", "/"),
		"empty":        r.Verify("", "GET", "dhcr.example.com", "/"),
	} {
		if ok {
			t.Errorf("%s: proof accepted", name)
		}
	}
	now = now.Add(2 * time.Minute)
	if r.Verify(proof, "GET", "dhcr.example.com", "/v2/library/x/blobs/sha256:ab") {
		t.Error("a stale proof was accepted")
	}
}

func TestNewRefuses(t *testing.T) {
	for name, err := range map[string]error{
		"short secret": func() error { _, err := New([]string{"http://a:1"}, "http://a:1", []byte("short"), nil); return err }(),
		"self missing": func() error { _, err := New([]string{"http://a:1"}, "http://b:1", secret, nil); return err }(),
		"bad peer":     func() error { _, err := New([]string{"a:1"}, "a:1", secret, nil); return err }(),
		"peer path":    func() error { _, err := New([]string{"http://a:1/x"}, "http://a:1/x", secret, nil); return err }(),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDiscoverFollowsTheService(t *testing.T) {
	r := ring(t, "http://10.0.0.1:8080", nil, "http://10.0.0.1:8080")
	var dns atomic.Pointer[[]string] // what the name resolves to; nil: the lookup fails
	set := func(addrs ...string) { dns.Store(&addrs) }
	lookup := func(ctx context.Context, host string) ([]string, error) {
		if host != "relay-peers.ns.svc" {
			t.Errorf("looked up %q", host)
		}
		if a := dns.Load(); a != nil {
			return *a, nil
		}
		return nil, errors.New("dns down")
	}
	var failures atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	set("10.0.0.1", "10.0.0.2")
	go Discover(ctx, r, "relay-peers.ns.svc:8080", "http", time.Millisecond, lookup, func(_ []string, err error) {
		if err != nil {
			failures.Add(1)
		}
	})
	wait := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for strings.Join(r.Peers(), " ") != want {
			if time.Now().After(deadline) {
				t.Fatalf("peers %v, want %s", r.Peers(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	wait("http://10.0.0.1:8080 http://10.0.0.2:8080")
	dns.Store(nil) // a failed lookup keeps the fleet
	for deadline := time.Now().Add(5 * time.Second); failures.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no failed lookup reported")
		}
	}
	if got := strings.Join(r.Peers(), " "); got != "http://10.0.0.1:8080 http://10.0.0.2:8080" {
		t.Fatalf("a failed lookup changed the fleet to %s", got)
	}
	set("10.0.0.3") // this replica stays in, whatever the records say
	wait("http://10.0.0.1:8080 http://10.0.0.3:8080")
}
