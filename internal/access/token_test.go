package access

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func newTestSigner(t *testing.T, secret []byte, now *time.Time) *Signer {
	t.Helper()
	s, err := NewSigner(secret, WithClock(func() time.Time { return *now }))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignerRoundTrip(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newTestSigner(t, testSecret, &now)
	for _, upstream := range []string{"upstream-token", ""} {
		tok := s.Issue("alice", "dockerhub", upstream, time.Minute)
		if !strings.HasPrefix(tok, "rr2.") {
			t.Fatalf("token %q lacks the rr2. prefix", tok)
		}
		if user, up, ok := s.Verify(tok, "dockerhub"); !ok || user != "alice" || up != upstream {
			t.Fatalf("Verify(Issue) = %q %q %v", user, up, ok)
		}
	}
	if a, b := s.Issue("alice", "dockerhub", "x", time.Minute), s.Issue("alice", "dockerhub", "x", time.Minute); a == b {
		t.Error("two tokens for the same claims are equal: the nonce is not fresh")
	}
}

func TestSignerRefuses(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	s := newTestSigner(t, testSecret, &now)
	other := newTestSigner(t, []byte("another key, another key, another"), &now)
	tok := s.Issue("alice", "dockerhub", "x", time.Minute)
	body := strings.TrimPrefix(tok, "rr2.")
	raw, _ := base64.RawURLEncoding.DecodeString(body)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)/2] ^= 1
	for _, tc := range []struct{ name, token, route string }{
		{"other key", other.Issue("alice", "dockerhub", "x", time.Minute), "dockerhub"},
		{"other route", tok, "k8s"},
		{"route prefix", s.Issue("alice", "docker", "x", time.Minute), "dockerhub"},
		{"flipped bit", "rr2." + base64.RawURLEncoding.EncodeToString(flipped), "dockerhub"},
		{"truncated", "rr2." + base64.RawURLEncoding.EncodeToString(raw[:len(raw)-1]), "dockerhub"},
		{"nonce only", "rr2." + base64.RawURLEncoding.EncodeToString(raw[:12]), "dockerhub"},
		{"not base64", "rr2.!!!", "dockerhub"},
		{"empty", "rr2.", "dockerhub"},
		{"old format", "rr1.eyJ1IjoiYWxpY2UifQ.c2ln", "dockerhub"},
		{"foreign", "eyJhbGciOiJFUzI1NiJ9.e30.sig", "dockerhub"},
		{"oversized", "rr2." + strings.Repeat("A", maxTokenLen+1), "dockerhub"},
	} {
		if _, _, ok := s.Verify(tc.token, tc.route); ok {
			t.Errorf("%s: token accepted", tc.name)
		}
	}
}

func TestSignerExpiry(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	for _, tc := range []struct {
		name  string
		ttl   time.Duration
		after time.Duration
		want  bool
	}{
		{"fresh", time.Minute, 0, true},
		{"just before", time.Minute, time.Minute - time.Millisecond, true},
		{"at expiry", time.Minute, time.Minute, false},
		{"after", time.Minute, time.Hour, false},
		{"sub-second ttl", 300 * time.Millisecond, 299 * time.Millisecond, true},
		{"sub-second ttl over", 300 * time.Millisecond, 301 * time.Millisecond, false},
		{"negative ttl", -time.Second, 0, false},
	} {
		now := start
		s := newTestSigner(t, testSecret, &now)
		tok := s.Issue("alice", "dockerhub", "x", tc.ttl)
		now = now.Add(tc.after)
		if _, _, ok := s.Verify(tok, "dockerhub"); ok != tc.want {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.want)
		}
	}
}

// TestTokenHidesUpstream: the upstream token's bytes appear nowhere in the
// relay token, in clear or in any base64 alignment.
func TestTokenHidesUpstream(t *testing.T) {
	now := time.Now()
	s := newTestSigner(t, testSecret, &now)
	upstream := "eyJhbGciOiJSUzI1NiJ9.secret-upstream-token-payload.signature"
	rr1 := "rr1." + base64.RawURLEncoding.EncodeToString([]byte(`{"u":"alice","t":"`+upstream+`"}`)) + ".sig"
	if upstreamVisible(rr1, upstream) == "" {
		t.Fatal("the probe misses an upstream token in base64 claims")
	}
	tok := s.Issue("alice", "dockerhub", upstream, time.Minute)
	if leak := upstreamVisible(tok, upstream); leak != "" {
		t.Fatalf("relay token shows the upstream token (%s)", leak)
	}
}

// upstreamVisible says how the upstream token shows in tok, if it does:
// in clear, or in the decoding of any part of tok under a base64 alphabet.
func upstreamVisible(tok, upstream string) string {
	probe := upstream[len(upstream)/4 : len(upstream)*3/4]
	if strings.Contains(tok, probe) {
		return "clear"
	}
	for _, part := range strings.FieldsFunc(tok, func(r rune) bool { return r == '.' }) {
		for off := 0; off < 4 && off < len(part); off++ {
			for _, enc := range []*base64.Encoding{base64.RawURLEncoding, base64.RawStdEncoding} {
				s := part[off:]
				s = s[:len(s)/4*4]
				if dec, err := enc.DecodeString(s); err == nil && bytes.Contains(dec, []byte(probe[:len(probe)/2])) {
					return "base64"
				}
			}
		}
	}
	return ""
}
