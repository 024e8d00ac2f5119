package access

import (
	"net/http/httptest"
	"net/netip"
	"testing"
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

func TestParsePrefix(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/8":     "10.0.0.0/8",
		"10.1.2.3/8":     "10.0.0.0/8", // masked
		"192.0.2.7":      "192.0.2.7/32",
		"2001:db8::1":    "2001:db8::1/128",
		"2001:db8::1/64": "2001:db8::/64",
		"fd00::/8":       "fd00::/8",
	} {
		p, err := ParsePrefix(in)
		if err != nil || p.String() != want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", in, p, err, want)
		}
	}
	for _, in := range []string{"", "10.0.0.0/33", "example.com", "10.0.0", "192.0.2.7:80"} {
		if p, err := ParsePrefix(in); err == nil {
			t.Errorf("ParsePrefix(%q) = %v, want an error", in, p)
		}
	}
}

func TestTrustedPeer(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote  string
		trusted []netip.Prefix
		want    bool
	}{
		{"10.0.0.5:5000", trusted, true},
		{"[::ffff:10.0.0.5]:5000", trusted, true},
		{"192.0.2.1:5000", trusted, false},
		{"10.0.0.5:5000", nil, false}, // no list trusts nobody
		{"garbage", trusted, false},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if got := TrustedPeer(r, tc.trusted); got != tc.want {
			t.Errorf("TrustedPeer(%s, %v) = %v, want %v", tc.remote, tc.trusted, got, tc.want)
		}
	}
}
