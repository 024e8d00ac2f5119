package registry_test

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/registry"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestNormalizeHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"dhcr.example.com", "dhcr.example.com"},
		{"DHCR.Example.COM", "dhcr.example.com"},
		{"dhcr.example.com:443", "dhcr.example.com"},
		{"dhcr.example.com.", "dhcr.example.com"},
		{"DHCR.Example.com.:443", "dhcr.example.com"},
		{"[::1]:8080", "::1"},
		{"[::1]", "::1"},
		{"::1", "::1"},
		{"[2001:DB8::1]:5000", "2001:db8::1"},
		{"127.0.0.1:5000", "127.0.0.1"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := registry.NormalizeHost(tt.in); got != tt.want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSameAddress: one host comparison for the whole relay: host as
// NormalizeHost sees it and the effective port; SameOrigin adds the
// scheme.
func TestSameAddress(t *testing.T) {
	tests := []struct {
		a, b                string
		address, sameOrigin bool
	}{
		{"https://gcr.io", "https://gcr.io", true, true},
		{"https://GCR.io.", "https://gcr.io:443", true, true},
		{"https://gcr.io", "https://gcr.io:5000", false, false},
		{"http://gcr.io:443", "https://gcr.io", true, false},
		{"http://gcr.io", "https://gcr.io", false, false}, // ports 80 and 443
		{"https://mirror.gcr.io", "https://gcr.io", false, false},
		{"http://[::1]:5000", "http://[::1]:5000", true, true},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5001", false, false},
	}
	for _, tt := range tests {
		a, b := mustURL(t, tt.a), mustURL(t, tt.b)
		if got := registry.SameAddress(a, b); got != tt.address {
			t.Errorf("SameAddress(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.address)
		}
		if got := registry.SameAddress(b, a); got != tt.address {
			t.Errorf("SameAddress(%s, %s) = %v, want %v", tt.b, tt.a, got, tt.address)
		}
		if got := registry.SameOrigin(a, b); got != tt.sameOrigin {
			t.Errorf("SameOrigin(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.sameOrigin)
		}
	}
}

func TestTableLookup(t *testing.T) {
	hub := &registry.Route{Name: "dockerhub", AccessDomain: "dhcr.example.com"}
	quay := &registry.Route{Name: "quay", AccessDomain: "Quay.Example.com"}
	dup := &registry.Route{Name: "dup", AccessDomain: "dhcr.example.com."}
	table := registry.NewTable([]*registry.Route{hub, quay, dup})

	tests := []struct {
		host string
		want *registry.Route
	}{
		{"dhcr.example.com", hub},
		{"DHCR.EXAMPLE.COM:443", hub},
		{"dhcr.example.com.", hub},
		{"quay.example.com:8080", quay},
		{"gcr.example.com", nil},
		{"example.com", nil},
		{"x.dhcr.example.com", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if got := table.Lookup(tt.host); got != tt.want {
			t.Errorf("Lookup(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestKeepsCredentials(t *testing.T) {
	quay := &registry.Route{Name: "quay", Upstream: mustURL(t, "https://quay.io")}
	lscr := &registry.Route{Name: "lscr", Upstream: mustURL(t, "https://lscr.io"), CredentialHosts: []string{"ghcr.io"}}
	local := &registry.Route{Name: "local", Upstream: mustURL(t, "http://127.0.0.1:5000")}

	tests := []struct {
		name  string
		route *registry.Route
		url   string
		want  bool
	}{
		{"exact host", quay, "https://quay.io/v2/x/blobs/sha256:aa", true},
		{"exact host other case", quay, "https://QUAY.io/v2/", true},
		{"cdn subdomain", quay, "https://cdn01.quay.io/sha256/aa?X-Amz-Signature=1", false},
		{"other scheme", quay, "http://quay.io/v2/", false},
		{"other host", quay, "https://storage.googleapis.com/x", false},
		{"suffix lookalike", quay, "https://evilquay.io/", false},
		{"credential host over https", lscr, "https://ghcr.io/v2/linuxserver/x/blobs/sha256:aa", true},
		{"credential host over http", lscr, "http://ghcr.io/v2/", false},
		{"credential host subdomain", lscr, "https://pkg-containers.ghcr.io/x", false},
		{"github cdn", lscr, "https://pkg-containers.githubusercontent.com/x", false},
		{"host with port", local, "http://127.0.0.1:5000/v2/", true},
		{"host other port", local, "http://127.0.0.1:5001/v2/", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.route.KeepsCredentials(mustURL(t, tt.url)); got != tt.want {
				t.Errorf("%s.KeepsCredentials(%s) = %v, want %v", tt.route.Name, tt.url, got, tt.want)
			}
		})
	}
}

func TestAuthHostAllowed(t *testing.T) {
	hub := &registry.Route{Name: "dockerhub", Upstream: mustURL(t, "https://registry-1.docker.io"),
		AuthHosts: []string{"auth.docker.io", "auth.ipv6.docker.com"}}
	gcr := &registry.Route{Name: "gcr", Upstream: mustURL(t, "https://gcr.io")}

	tests := []struct {
		route *registry.Route
		realm string
		want  bool
	}{
		{hub, "https://auth.docker.io/token", true},
		{hub, "https://AUTH.docker.io:443/token", true},
		{hub, "https://auth.docker.io./token", true},
		{hub, "https://auth.ipv6.docker.com/token", true},
		{hub, "https://registry-1.docker.io/token", true},
		{hub, "https://auth.docker.io:8443/token", false},
		{hub, "https://registry-1.docker.io:444/token", false},
		{hub, "https://evil.example/token", false},
		{hub, "https://x.auth.docker.io/token", false},
		{hub, "https://docker.io/token", false},
		{gcr, "https://gcr.io/v2/token", true},
		{gcr, "https://gcr.io:443/v2/token", true},
		{gcr, "https://auth.docker.io/token", false},
	}
	for _, tt := range tests {
		if got := tt.route.AuthHostAllowed(mustURL(t, tt.realm)); got != tt.want {
			t.Errorf("%s.AuthHostAllowed(%q) = %v, want %v", tt.route.Name, tt.realm, got, tt.want)
		}
	}
}

var (
	routeName = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	dnsLabel  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`)
)

// TestBuiltins checks what every entry of the table must satisfy, so that
// a new entry needs no edit here: names that make metrics labels and
// variable prefixes, unique subdomains and registry names, https upstreams.
func TestBuiltins(t *testing.T) {
	seen := map[string]string{}
	unique := func(b registry.Builtin, kind, v string) {
		if prev, dup := seen[kind+" "+v]; dup {
			t.Errorf("%s: %s %q is also %s's", b.Name, kind, v, prev)
		}
		seen[kind+" "+v] = b.Name
	}
	for _, b := range registry.Builtins {
		if !routeName.MatchString(b.Name) || b.EnvPrefix() != strings.ToUpper(b.Name) {
			t.Errorf("%q: want a lower-case name of letters and digits (prefix %s)", b.Name, b.EnvPrefix())
		}
		if !dnsLabel.MatchString(b.Subdomain) {
			t.Errorf("%s: subdomain %q is not one DNS label", b.Name, b.Subdomain)
		}
		unique(b, "name", b.Name)
		unique(b, "subdomain", b.Subdomain)
		unique(b, "registry", b.Registry)
		if b.Subdomain == "mirror" {
			t.Errorf("%s: subdomain mirror is the mirror host's", b.Name)
		}
		u, err := url.Parse(b.Upstream)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
			t.Errorf("%s upstream %q is not an https base URL", b.Name, b.Upstream)
		}
		if b.Registry == "" || b.Registry != registry.NormalizeHost(b.Registry) {
			t.Errorf("%s: registry name %q is empty or not normalized", b.Name, b.Registry)
		}
		for _, h := range append(slices.Clone(b.AuthHosts), b.CredentialHosts...) {
			if h != registry.NormalizeHost(h) {
				t.Errorf("%s host %q is not normalized", b.Name, h)
			}
		}
		if b.Name == "dockerhub" && (b.Patch == nil || b.Patch("nginx") != "library/nginx") {
			t.Error("dockerhub lost its library/ patch")
		}
	}
}
