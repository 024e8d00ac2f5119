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
