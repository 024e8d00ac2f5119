package access

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter applies per-client-IP limits: a request rate (token bucket) and
// a number of concurrent blob transfers. Zero values switch a limit off.
type Limiter struct {
	rate         rate.Limit
	burst        int
	maxTransfers int

	mu        sync.Mutex
	clients   map[netip.Addr]*client
	lastSweep time.Time
}

type client struct {
	bucket    *rate.Limiter
	transfers int
	seen      time.Time
}

// idleForget is how long a client's state is kept after its last request.
const idleForget = 10 * time.Minute

// NewLimiter allows perSecond requests per client IP with the given burst,
// and maxTransfers concurrent transfers per client IP.
func NewLimiter(perSecond float64, burst, maxTransfers int) *Limiter {
	r := rate.Limit(perSecond)
	if perSecond <= 0 {
		r = rate.Inf
	}
	return &Limiter{rate: r, burst: max(burst, 1), maxTransfers: maxTransfers, clients: map[netip.Addr]*client{}}
}

func (l *Limiter) client(ip netip.Addr, now time.Time) *client {
	if now.Sub(l.lastSweep) > idleForget {
		for k, c := range l.clients {
			if now.Sub(c.seen) > idleForget && c.transfers == 0 {
				delete(l.clients, k)
			}
		}
		l.lastSweep = now
	}
	c := l.clients[ip]
	if c == nil {
		c = &client{bucket: rate.NewLimiter(l.rate, l.burst)}
		l.clients[ip] = c
	}
	c.seen = now
	return c
}

// Allow takes one request from ip's budget; when there is none it returns
// false and how long until there will be.
func (l *Limiter) Allow(ip netip.Addr) (bool, time.Duration) {
	if l.rate == rate.Inf {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.client(ip, now).bucket.ReserveN(now, 1)
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
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.client(ip, time.Now())
	if c.transfers >= l.maxTransfers {
		return nil, false
	}
	c.transfers++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			c.transfers--
			l.mu.Unlock()
		})
	}, true
}
