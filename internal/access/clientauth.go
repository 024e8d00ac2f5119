package access

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Users is an htpasswd file's bcrypt entries.
type Users map[string][]byte

// ParseHtpasswd reads "user:$2y$..." lines (htpasswd -B); other hash
// schemes are refused: they are too weak to put on the internet.
func ParseHtpasswd(data []byte) (Users, error) {
	users := Users{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:bcrypt-hash", n)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("line %d (%s): only bcrypt hashes are accepted (htpasswd -B): %w", n, user, err)
		}
		users[user] = []byte(hash)
		cost, _ := bcrypt.Cost([]byte(hash))
		dummyMu.Lock()
		dummyCost = max(dummyCost, cost)
		dummyMu.Unlock()
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("no users")
	}
	return users, sc.Err()
}

// Verify checks a user's password.
func (u Users) Verify(user, password string) bool {
	hash, ok := u[user]
	if !ok {
		// Same work for unknown users, so timing does not tell who exists.
		_ = bcrypt.CompareHashAndPassword(dummy(), []byte(password))
		return false
	}
	return bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
}

// dummyCost is the highest cost among loaded entries; the dummy hash for
// unknown users is made at that cost, once.
var (
	dummyMu   sync.Mutex
	dummyCost = bcrypt.MinCost
	dummyHash []byte
)

func dummy() []byte {
	dummyMu.Lock()
	defer dummyMu.Unlock()
	if c, _ := bcrypt.Cost(dummyHash); dummyHash == nil || c < dummyCost {
		dummyHash, _ = bcrypt.GenerateFromPassword([]byte("registry-relay"), dummyCost)
	}
	return dummyHash
}

// Signer issues and checks the relay's own bearer tokens, which wrap the
// upstream token a client was given after authenticating to the relay.
// Replicas that share the key accept each other's tokens.
type Signer struct{ key []byte }

// NewSigner returns a signer for key (at least 32 bytes of secret).
func NewSigner(key []byte) *Signer { return &Signer{key: key} }

// tokenPrefix marks relay tokens, so they are never mistaken for an
// upstream's and forwarded.
const tokenPrefix = "rr1."

type claims struct {
	User     string `json:"u"`
	Route    string `json:"r"`
	Upstream string `json:"t,omitempty"`
	Expires  int64  `json:"e"`
}

// Issue wraps an upstream token (possibly empty, for upstreams without
// token auth) for user on one route, valid for ttl.
func (s *Signer) Issue(user, route, upstream string, ttl time.Duration) string {
	payload, _ := json.Marshal(claims{User: user, Route: route, Upstream: upstream, Expires: time.Now().Add(ttl).Unix()})
	p := base64.RawURLEncoding.EncodeToString(payload)
	return tokenPrefix + p + "." + base64.RawURLEncoding.EncodeToString(s.mac(p))
}

func (s *Signer) mac(payload string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(payload))
	return m.Sum(nil)
}

// Verify checks a token's signature, expiry and route, and returns who it
// was issued to and the upstream token inside. A token is good for the
// route it was issued on only: its upstream token belongs to that route's
// upstream.
func (s *Signer) Verify(token, route string) (user, upstream string, ok bool) {
	rest, found := strings.CutPrefix(token, tokenPrefix)
	p, sig, found2 := strings.Cut(rest, ".")
	if !found || !found2 {
		return "", "", false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, s.mac(p)) {
		return "", "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(p)
	var c claims
	if err != nil || json.Unmarshal(raw, &c) != nil || time.Now().Unix() > c.Expires || c.Route != route {
		return "", "", false
	}
	return c.User, c.Upstream, true
}
