package access

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// Limiter applies per-client limits: a request rate (token bucket) and a
// number of concurrent blob transfers. Zero values switch a limit off.
// A client is an IPv4 address or an IPv6 /64 (see ClientKey).
//
// Idle clients are kept in a bounded LRU and forgotten after idleForget
// or when MaxClients newer ones push them out; clients with transfers in
// flight are kept aside, out of reach of eviction, so a flood of source
// addresses can never reset a running client's transfer count.
type Limiter struct {
	rate         rate.Limit
	burst        int
	maxTransfers int
	now          func() time.Time

	mu     sync.Mutex
	idle   *simplelru.LRU[netip.Prefix, *client]
	active map[netip.Prefix]*client
}

type client struct {
	bucket    *rate.Limiter
	transfers int
	seen      time.Time
}

const (
	// idleForget is how long a client's state is kept after its last request.
	idleForget = 10 * time.Minute
	// MaxClients bounds the idle clients remembered: each costs ~200 bytes.
	MaxClients = 100_000
)

// LimiterOption adjusts a Limiter.
type LimiterOption func(*Limiter)

// WithLimiterClock makes the limiter read the time from now, for tests.
func WithLimiterClock(now func() time.Time) LimiterOption {
	return func(l *Limiter) { l.now = now }
}

// withMaxClients shrinks the LRU, for tests.
func withMaxClients(n int) LimiterOption {
	return func(l *Limiter) { l.idle, _ = simplelru.NewLRU[netip.Prefix, *client](n, nil) }
}

// NewLimiter allows perSecond requests per client with the given burst,
// and maxTransfers concurrent transfers per client.
func NewLimiter(perSecond float64, burst, maxTransfers int, opts ...LimiterOption) *Limiter {
	r := rate.Limit(perSecond)
	if perSecond <= 0 {
		r = rate.Inf
	}
	idle, _ := simplelru.NewLRU[netip.Prefix, *client](MaxClients, nil) // errs only for size <= 0
	l := &Limiter{rate: r, burst: max(burst, 1), maxTransfers: maxTransfers, now: time.Now, idle: idle, active: map[netip.Prefix]*client{}}
	for _, o := range opts {
		o(l)
	}
	return l
}

// ClientKey is what one client's budget is kept under: an IPv4 address
// (IPv4-mapped IPv6 unmapped first), or the /64 of an IPv6 address, since
// one subscriber or host commonly holds a whole /64 and can rotate freely
// within it.
func ClientKey(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return netip.PrefixFrom(ip, 32)
	}
	p, _ := ip.Prefix(64) // an invalid address gives the zero Prefix: one shared key
	return p
}

func (l *Limiter) client(key netip.Prefix, now time.Time) *client {
	if c := l.active[key]; c != nil {
		c.seen = now
		return c
	}
	l.forgetIdle(now)
	c, ok := l.idle.Get(key)
	if !ok || now.Sub(c.seen) > idleForget {
		c = &client{bucket: rate.NewLimiter(l.rate, l.burst)}
		l.idle.Add(key, c)
	}
	c.seen = now
	return c
}

// forgetIdle drops a few of the least recently seen clients once idle
// for idleForget, so memory after a flood returns without a sweep.
func (l *Limiter) forgetIdle(now time.Time) {
	for range 2 {
		_, c, ok := l.idle.GetOldest()
		if !ok || now.Sub(c.seen) <= idleForget {
			return
		}
		l.idle.RemoveOldest()
	}
}

// Allow takes one request from ip's budget; when there is none it returns
// false and how long until there will be.
func (l *Limiter) Allow(ip netip.Addr) (bool, time.Duration) {
	if l.rate == rate.Inf {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.client(ClientKey(ip), now).bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, time.Duration(math.Ceil(d.Seconds())) * time.Second
	}
	return true, 0
}

// StartTransfer counts a transfer for ip; the caller calls release when
// it ends. ok is false when ip already has maxTransfers running.
func (l *Limiter) StartTransfer(ip netip.Addr) (release func(), ok bool) {
	if l.maxTransfers <= 0 {
		return func() {}, true
	}
	key := ClientKey(ip)
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(key, l.now())
	if c.transfers >= l.maxTransfers {
		return nil, false
	}
	if c.transfers == 0 {
		l.idle.Remove(key)
		l.active[key] = c
	}
	c.transfers++
	var once sync.Once
	return func() { once.Do(func() { l.endTransfer(key, c) }) }, true
}

func (l *Limiter) endTransfer(key netip.Prefix, c *client) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c.transfers--
	if c.transfers == 0 {
		delete(l.active, key)
		c.seen = l.now()
		l.idle.Add(key, c)
	}
}

// clients reports how many clients are remembered, idle and active.
func (l *Limiter) clients() (idle, active int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.idle.Len(), len(l.active)
}
