package access

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

func TestClientKey(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		same bool
	}{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff", true}, // one /64
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},                 // neighbouring /64
		{"2001:db8:1:2::1%eth0", "2001:db8:1:2::2", true},             // zones do not split a client
		{"192.0.2.1", "::ffff:192.0.2.1", true},                       // mapped IPv4 is IPv4
		{"192.0.2.1", "192.0.2.2", false},                             // IPv4 stays per address
		{"::ffff:192.0.2.1", "::ffff:192.0.2.2", false},               // mapped ones too
		{"::ffff:192.0.2.1", "::ffff:0:0", false},                     // not one /64 for all of IPv4
		{"192.0.2.1", "2001:db8::1", false},
	} {
		ka, kb := ClientKey(netip.MustParseAddr(tc.a)), ClientKey(netip.MustParseAddr(tc.b))
		if (ka == kb) != tc.same {
			t.Errorf("%s (%s) and %s (%s): same=%v, want %v", tc.a, ka, tc.b, kb, ka == kb, tc.same)
		}
	}
}

func TestLimiter(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(1, 2, 1, WithLimiterClock(func() time.Time { return now }))
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	if ok, _ := l.Allow(ip); !ok {
		t.Fatal("first request refused")
	}
	if ok, _ := l.Allow(netip.MustParseAddr("::ffff:192.0.2.1")); !ok {
		t.Fatal("burst of 2 refused its second")
	}
	if ok, wait := l.Allow(ip); ok || wait < time.Second {
		t.Fatalf("third request: ok=%v wait=%s, want a refusal with Retry-After >= 1s", ok, wait)
	}
	if ok, _ := l.Allow(other); !ok {
		t.Fatal("another client was limited by the first one's budget")
	}
	now = now.Add(time.Second)
	if ok, _ := l.Allow(ip); !ok {
		t.Fatal("the bucket did not refill")
	}
	release, ok := l.StartTransfer(ip)
	if !ok {
		t.Fatal("first transfer refused")
	}
	if _, ok := l.StartTransfer(ip); ok {
		t.Fatal("second concurrent transfer allowed with a limit of 1")
	}
	release()
	release() // idempotent
	if _, ok := l.StartTransfer(ip); !ok {
		t.Fatal("transfer refused after the first ended")
	}
	if ok, _ := NewLimiter(0, 1, 0).Allow(ip); !ok {
		t.Fatal("a zero rate must mean no limit")
	}
}

func TestLimiterIPv6Rotation(t *testing.T) {
	l := NewLimiter(1, 3, 0)
	allowed := 0
	for i := range 10 {
		if ok, _ := l.Allow(netip.MustParseAddr(fmt.Sprintf("2001:db8:0:7::%x", i+1))); ok {
			allowed++
		}
	}
	if allowed != 3 {
		t.Errorf("10 addresses of one /64 got %d requests, want the burst of 3", allowed)
	}
	if ok, _ := l.Allow(netip.MustParseAddr("2001:db8:0:8::1")); !ok {
		t.Error("the next /64 was limited by its neighbour")
	}
}

// TestLimiterBoundedAndActiveKept: idle clients are bounded and expire;
// a client with a transfer in flight keeps its count through a flood of
// other addresses and past the idle expiry.
func TestLimiterBoundedAndActiveKept(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(100, 10, 1, WithLimiterClock(func() time.Time { return now }), withMaxClients(4))
	busy := netip.MustParseAddr("2001:db8:aa::1")
	release, ok := l.StartTransfer(busy)
	if !ok {
		t.Fatal("first transfer refused")
	}
	flood := func(n int, base string) {
		for i := range n {
			l.Allow(netip.MustParseAddr(fmt.Sprintf(base, i)))
		}
	}
	flood(50, "198.51.100.%d")
	if idle, active := l.clients(); idle > 4 || active != 1 {
		t.Fatalf("after a flood: %d idle (cap 4), %d active (want 1)", idle, active)
	}
	now = now.Add(time.Hour)
	flood(50, "203.0.113.%d")
	if _, ok := l.StartTransfer(netip.MustParseAddr("2001:db8:aa::2")); ok {
		t.Fatal("eviction or expiry reset an active client's transfer count")
	}
	release()
	if _, active := l.clients(); active != 0 {
		t.Fatalf("%d active clients after the transfer ended", active)
	}
	if _, ok := l.StartTransfer(busy); !ok {
		t.Fatal("transfer refused after the first ended")
	}

	now = now.Add(idleForget + time.Second)
	for range 3 { // each request forgets a few expired clients
		l.Allow(netip.MustParseAddr("192.0.2.200"))
	}
	if idle, _ := l.clients(); idle > 2 {
		t.Errorf("%d idle clients remembered past the idle expiry", idle)
	}
}
