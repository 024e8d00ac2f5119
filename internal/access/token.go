package access

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Signer seals and opens the relay's own bearer tokens, which wrap the
// upstream token a client was given after authenticating to the relay.
// The claims, the upstream token among them, are encrypted with
// AES-256-GCM: a client holding a relay token cannot read the upstream
// token inside and take it to the upstream directly. Replicas that share
// the secret accept each other's tokens.
//
// Tokens of the earlier "rr1." format (signed, not encrypted) no longer
// verify; clients holding one are challenged and log in again.
type Signer struct {
	aead cipher.AEAD
	now  func() time.Time
}

// SignerOption adjusts a Signer.
type SignerOption func(*Signer)

// WithClock makes the signer read the time from now, for expiry tests.
func WithClock(now func() time.Time) SignerOption {
	return func(s *Signer) { s.now = now }
}

// tokenKeyLabel separates the relay token key from any other use of the
// same secret.
const tokenKeyLabel = "registry-relay relay token v2 (AES-256-GCM)"

// NewSigner returns a signer whose key is derived from secret (at least
// 32 bytes of it; config checks) with HKDF-SHA256.
func NewSigner(secret []byte, opts ...SignerOption) (*Signer, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, tokenKeyLabel, 32)
	if err != nil {
		return nil, fmt.Errorf("deriving the relay token key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &Signer{aead: aead, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// tokenPrefix marks relay tokens, so they are never mistaken for an
// upstream's and forwarded.
const tokenPrefix = "rr2."

// maxTokenLen bounds what Verify decodes; upstream tokens are a few KiB.
const maxTokenLen = 32 << 10

type claims struct {
	User     string `json:"u"`
	Upstream string `json:"t,omitempty"`
	Issued   int64  `json:"i"` // Unix milliseconds
	Expires  int64  `json:"e"` // Unix milliseconds
}

// additionalData binds a token to its route: opened for another route,
// the authentication tag does not match.
func additionalData(route string) []byte { return []byte(tokenPrefix + route) }

// Issue wraps an upstream token (possibly empty, for upstreams without
// token auth) for user on one route, valid for ttl.
func (s *Signer) Issue(user, route, upstream string, ttl time.Duration) string {
	now := s.now()
	plain, _ := json.Marshal(claims{User: user, Upstream: upstream, Issued: now.UnixMilli(), Expires: now.Add(ttl).UnixMilli()})
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails
	sealed := s.aead.Seal(nonce, nonce, plain, additionalData(route))
	return tokenPrefix + base64.RawURLEncoding.EncodeToString(sealed)
}

// Verify opens a token for route, checks its expiry, and returns who it
// was issued to and the upstream token inside. A token is good for the
// route it was issued on only: its upstream token belongs to that route's
// upstream.
func (s *Signer) Verify(token, route string) (user, upstream string, ok bool) {
	body, found := strings.CutPrefix(token, tokenPrefix)
	if !found || len(body) > maxTokenLen {
		return "", "", false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(body)
	n := s.aead.NonceSize()
	if err != nil || len(sealed) < n+s.aead.Overhead() {
		return "", "", false
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], additionalData(route))
	var c claims
	if err != nil || json.Unmarshal(plain, &c) != nil || s.now().UnixMilli() >= c.Expires {
		return "", "", false
	}
	return c.User, c.Upstream, true
}
