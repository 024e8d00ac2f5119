// Package peers lets the replicas of one relay act as one for blob fills:
// every blob has one owner among them, chosen by rendezvous hashing, and a
// replica that misses a blob forwards the pull to its owner, whose single
// fill then serves the whole fleet. Requests between peers carry an HMAC
// of the request under a shared secret, so that only a peer is trusted as
// one. Pure logic, no I/O: the relay does the forwarding.
package peers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// Header carries a peer request's proof.
const Header = "X-Relay-Peer"

// maxSkew bounds how old (or how far ahead) a peer's proof may be.
const maxSkew = time.Minute

// Ring is the fleet: its peers' base URLs, this replica's among them.
type Ring struct {
	peers  atomic.Pointer[[]*url.URL]
	self   string
	secret []byte
	now    func() time.Time
}

// New returns the ring of peers (base URLs such as http://10.0.0.7:8080),
// self being this replica's; secret is shared by all of them.
func New(peers []string, self string, secret []byte, now func() time.Time) (*Ring, error) {
	if len(secret) < 32 {
		return nil, fmt.Errorf("the peer secret needs at least 32 bytes")
	}
	r := &Ring{self: strings.TrimSuffix(self, "/"), secret: secret, now: now}
	if r.now == nil {
		r.now = time.Now
	}
	list, found, err := parsePeers(peers, r.self)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("this replica (%s) is not among the peers", self)
	}
	r.peers.Store(&list)
	return r, nil
}

func parsePeers(peers []string, self string) (list []*url.URL, found bool, err error) {
	for _, p := range peers {
		u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(p), "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return nil, false, fmt.Errorf("peer %q: want a base URL such as http://10.0.0.7:8080", p)
		}
		found = found || u.String() == self
		list = append(list, u)
	}
	return list, found, nil
}

// SetPeers replaces the fleet (a discovery found it changed); this
// replica stays in it whether or not the list names it yet (a pod not
// ready is left out of its Service's records).
func (r *Ring) SetPeers(peers []string) error {
	peers = withSelf(peers, r.self)
	list, _, err := parsePeers(peers, r.self)
	if err != nil {
		return err
	}
	r.peers.Store(&list)
	return nil
}

// withSelf is peers with self added if missing, sorted: the fleet in the
// one order that Peers reports and Discover compares.
func withSelf(peers []string, self string) []string {
	out := slices.Clone(peers)
	if !slices.Contains(out, self) {
		out = append(out, self)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Peers lists the fleet's base URLs.
func (r *Ring) Peers() []string {
	var out []string
	for _, p := range *r.peers.Load() {
		out = append(out, p.String())
	}
	return out
}

// Owner returns the peer that fills key (a digest) and whether it is this
// replica. Rendezvous hashing: every replica computes the same owner from
// the same list, and a peer leaving moves only the keys it owned.
func (r *Ring) Owner(key string) (owner *url.URL, self bool) {
	var best uint64
	for _, p := range *r.peers.Load() {
		sum := sha256.Sum256([]byte(p.String() + "\x00" + key))
		if w := binary.BigEndian.Uint64(sum[:8]); owner == nil || w > best {
			owner, best = p, w
		}
	}
	return owner, owner.String() == r.self
}

// Sign returns the proof for a peer request (method, Host and path).
func (r *Ring) Sign(method, host, path string) string {
	ts := strconv.FormatInt(r.now().Unix(), 10)
	return ts + ":" + r.mac(ts, method, host, path)
}

// Verify reports whether proof is a fresh peer proof for this request.
func (r *Ring) Verify(proof, method, host, path string) bool {
	ts, mac, ok := strings.Cut(proof, ":")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil {
		return false
	}
	if d := r.now().Sub(time.Unix(sec, 0)); d > maxSkew || d < -maxSkew {
		return false
	}
	return hmac.Equal([]byte(mac), []byte(r.mac(ts, method, host, path)))
}

func (r *Ring) mac(ts, method, host, path string) string {
	m := hmac.New(sha256.New, r.secret)
	m.Write([]byte(ts + "\n" + method + "\n" + strings.ToLower(host) + "\n" + path))
	return hex.EncodeToString(m.Sum(nil))
}
