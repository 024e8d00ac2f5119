package access

import (
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestRepoPolicy(t *testing.T) {
	p := RepoPolicy{Allow: []string{"library/*", "bitnami/*", "myorg/**"}, Deny: []string{"library/evil"}}
	for repo, want := range map[string]bool{
		"library/nginx": true, "bitnami/redis": true, "library/evil": false,
		"someuser/app": false, "library/nested/x": false, "myorg/a/b/c": true, "myorg": false,
	} {
		if got := p.Permits(repo); got != want {
			t.Errorf("Permits(%q) = %v, want %v", repo, got, want)
		}
	}
	if !(RepoPolicy{}).Permits("anything/at/all") {
		t.Error("an empty policy denies")
	}
	if ValidatePattern("[") == nil || ValidatePattern("") == nil || ValidatePattern("a/*") != nil {
		t.Error("ValidatePattern misjudges")
	}
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote, xff, want string
	}{
		{"192.0.2.1:5000", "203.0.113.9", "192.0.2.1"},                // untrusted peer: its header is ignored
		{"10.0.0.5:5000", "203.0.113.9", "203.0.113.9"},               // trusted proxy
		{"10.0.0.5:5000", "198.51.100.1, 203.0.113.9", "203.0.113.9"}, // left entries are the client's word
		{"10.0.0.5:5000", "203.0.113.9, 10.1.1.1", "203.0.113.9"},     // two proxies
		{"10.0.0.5:5000", "garbage", "10.0.0.5"},
		{"[::ffff:10.0.0.5]:5000", "", "10.0.0.5"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := ClientIP(r, trusted); got.String() != tc.want {
			t.Errorf("%s + XFF %q: %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}

func TestLimiter(t *testing.T) {
	l := NewLimiter(1, 2, 1)
	ip := netip.MustParseAddr("192.0.2.1")
	other := netip.MustParseAddr("192.0.2.2")
	if ok, _ := l.Allow(ip); !ok {
		t.Fatal("first request refused")
	}
	if ok, _ := l.Allow(ip); !ok {
		t.Fatal("burst of 2 refused its second")
	}
	if ok, wait := l.Allow(ip); ok || wait < time.Second {
		t.Fatalf("third request: ok=%v wait=%s, want a refusal with Retry-After >= 1s", ok, wait)
	}
	if ok, _ := l.Allow(other); !ok {
		t.Fatal("another client was limited by the first one's budget")
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

func TestHtpasswdAndTokens(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	users, err := ParseHtpasswd([]byte("# comment\nalice:" + string(hash) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !users.Verify("alice", "s3cret") || users.Verify("alice", "wrong") || users.Verify("bob", "s3cret") {
		t.Error("Verify misjudges")
	}
	if _, err := ParseHtpasswd([]byte("bob:{SHA}fakeHash=")); err == nil || !strings.Contains(err.Error(), "bcrypt") {
		t.Errorf("a SHA1 entry was accepted: %v", err)
	}
	s := NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	tok := s.Issue("alice", "dockerhub", "upstream-token", time.Minute)
	if user, up, ok := s.Verify(tok, "dockerhub"); !ok || user != "alice" || up != "upstream-token" {
		t.Fatalf("Verify(Issue) = %q %q %v", user, up, ok)
	}
	for name, bad := range map[string]string{
		"other key":   NewSigner([]byte("another key, another key, another")).Issue("alice", "dockerhub", "x", time.Minute),
		"expired":     s.Issue("alice", "dockerhub", "x", -time.Second),
		"other route": s.Issue("alice", "k8s", "x", time.Minute),
		"tampered":    tok[:len(tok)-2] + "AA",
		"foreign":     "eyJhbGciOiJFUzI1NiJ9.e30.sig",
	} {
		if _, _, ok := s.Verify(bad, "dockerhub"); ok {
			t.Errorf("%s token accepted", name)
		}
	}
}
