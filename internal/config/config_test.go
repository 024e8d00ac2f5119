package config_test

import (
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/config"
	"github.com/registry-relay/registry-relay/internal/registry"
)

func load(t *testing.T, environ map[string]string) *config.Config {
	t.Helper()
	c, err := config.Load(environ)
	if err != nil {
		t.Fatalf("Load(%v) error: %v", environ, err)
	}
	return c
}

func routeNamed(c *config.Config, name string) *registry.Route {
	for _, r := range c.Routes {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func TestLoadDefaults(t *testing.T) {
	c := load(t, map[string]string{})
	if c.Listen != ":8080" || c.AdminListen != ":9090" {
		t.Errorf("listen = %q, admin = %q; want :8080 and :9090", c.Listen, c.AdminListen)
	}
	if c.ShutdownGrace != 30*time.Second || c.MaxRedirects != 10 || c.PassBlobRedirects {
		t.Errorf("grace %v, redirects %d, pass blobs %v", c.ShutdownGrace, c.MaxRedirects, c.PassBlobRedirects)
	}
	if len(c.Routes) != len(registry.Builtins) {
		t.Fatalf("%d routes, want the %d built-in ones", len(c.Routes), len(registry.Builtins))
	}
	for i, b := range registry.Builtins {
		r := c.Routes[i]
		if r.Name != b.Name || r.AccessDomain != b.Subdomain+".localhost" {
			t.Errorf("route %d = %s at %s, want %s at %s.localhost", i, r.Name, r.AccessDomain, b.Name, b.Subdomain)
		}
		if r.Upstream.String() != b.Upstream || r.UpstreamOverridden {
			t.Errorf("%s upstream = %v (overridden %v), want %s", r.Name, r.Upstream, r.UpstreamOverridden, b.Upstream)
		}
		if (r.Patch == nil) != (b.Patch == nil) || r.Repository("nginx") != patched(b, "nginx") || !slices.Equal(r.AuthHosts, b.AuthHosts) {
			t.Errorf("%s = %+v, want patch/auth hosts of %+v", r.Name, r, b)
		}
	}
	if got := routeNamed(c, "dockerhub").AccessDomain; got != "dhcr.localhost" {
		t.Errorf("dockerhub domain = %q", got)
	}
}

func TestLoadRoutes(t *testing.T) {
	t.Run("base domain", func(t *testing.T) {
		c := load(t, map[string]string{"RELAY_BASE_DOMAIN": "Example.com."})
		for i, b := range registry.Builtins {
			if got := c.Routes[i].AccessDomain; got != b.Subdomain+".example.com" {
				t.Errorf("route %s domain = %q, want %s.example.com", c.Routes[i].Name, got, b.Subdomain)
			}
		}
	})
	t.Run("explicit access domain wins", func(t *testing.T) {
		c := load(t, map[string]string{"RELAY_BASE_DOMAIN": "example.com", "DOCKERHUB_ACCESS_DOMAIN": "hub.mirror.test"})
		if got := routeNamed(c, "dockerhub").AccessDomain; got != "hub.mirror.test" {
			t.Errorf("dockerhub domain = %q", got)
		}
		if got := routeNamed(c, "quay").AccessDomain; got != "quay.example.com" {
			t.Errorf("quay domain = %q", got)
		}
	})
	t.Run("disabled route", func(t *testing.T) {
		c := load(t, map[string]string{"GCR_ENABLED": "false"})
		if routeNamed(c, "gcr") != nil || len(c.Routes) != len(registry.Builtins)-1 {
			t.Errorf("gcr still routed; %d routes", len(c.Routes))
		}
	})
	t.Run("upstream override", func(t *testing.T) {
		c := load(t, map[string]string{"DOCKERHUB_UPSTREAM": "http://127.0.0.1:5000/"})
		r := routeNamed(c, "dockerhub")
		if r.Upstream.String() != "http://127.0.0.1:5000" || !r.UpstreamOverridden {
			t.Errorf("upstream = %v, overridden = %v", r.Upstream, r.UpstreamOverridden)
		}
		if r.Repository("nginx") != "library/nginx" {
			t.Error("overriding the upstream dropped the library/ patch")
		}
		if routeNamed(c, "quay").UpstreamOverridden {
			t.Error("quay marked overridden")
		}
	})
	t.Run("auth hosts extended", func(t *testing.T) {
		c := load(t, map[string]string{"QUAY_AUTH_HOSTS": "a.example, B.Example. ,"})
		r := routeNamed(c, "quay")
		if !slices.Equal(r.AuthHosts, []string{"a.example", "b.example"}) {
			t.Errorf("quay auth hosts = %q", r.AuthHosts)
		}
		allowed := func(host string) bool { return r.AuthHostAllowed(&url.URL{Scheme: "https", Host: host}) }
		if !allowed("b.example") || allowed("c.example") {
			t.Error("AuthHostAllowed disagrees with QUAY_AUTH_HOSTS")
		}
		if hub := routeNamed(c, "dockerhub"); len(hub.AuthHosts) != 2 {
			t.Errorf("dockerhub auth hosts changed: %q", hub.AuthHosts)
		}
	})
	t.Run("auth and credential hosts with ports", func(t *testing.T) {
		c := load(t, map[string]string{
			"GHCR_AUTH_HOSTS": "Tokens.Example:8443,[::1]:5001,plain.example", "GHCR_CREDENTIAL_HOSTS": "storage.example:9000",
		})
		r := routeNamed(c, "ghcr")
		if !slices.Equal(r.AuthHosts, []string{"tokens.example:8443", "[::1]:5001", "plain.example"}) ||
			!slices.Equal(r.CredentialHosts, []string{"storage.example:9000"}) {
			t.Fatalf("auth hosts %q, credential hosts %q", r.AuthHosts, r.CredentialHosts)
		}
		for realm, want := range map[string]bool{
			"https://tokens.example:8443/t": true, "https://tokens.example/t": false, "https://[::1]:5001/t": true,
			"https://plain.example/t": true, "https://plain.example:444/t": false, "http://plain.example/t": false,
		} {
			u, _ := url.Parse(realm)
			if got := r.AuthHostAllowed(u); got != want {
				t.Errorf("AuthHostAllowed(%s) = %v, want %v", realm, got, want)
			}
		}
		if u, _ := url.Parse("https://storage.example:9000/b"); !r.KeepsCredentials(u) {
			t.Error("a listed credential host does not keep the token")
		}
	})
	t.Run("overridden upstream drops the built-in hosts", func(t *testing.T) {
		c := load(t, map[string]string{
			"DOCKERHUB_UPSTREAM": "https://mirror.corp.example", "LSCR_UPSTREAM": "https://lscr.corp.example",
			"LSCR_AUTH_HOSTS": "auth.corp.example", "QUAY_UPSTREAM": "https://QUAY.io:443/",
		})
		if hub := routeNamed(c, "dockerhub"); len(hub.AuthHosts) != 0 || !hub.UpstreamOverridden {
			t.Errorf("dockerhub pointed elsewhere keeps auth hosts %q (overridden %v)", hub.AuthHosts, hub.UpstreamOverridden)
		}
		if lscr := routeNamed(c, "lscr"); !slices.Equal(lscr.AuthHosts, []string{"auth.corp.example"}) || len(lscr.CredentialHosts) != 0 {
			t.Errorf("lscr pointed elsewhere: auth %q, credential %q", lscr.AuthHosts, lscr.CredentialHosts)
		}
		if quay := routeNamed(c, "quay"); quay.UpstreamOverridden {
			t.Error("naming the built-in upstream again counts as an override")
		}
		if !routeNamed(c, "lscr").UpstreamOverridden {
			t.Error("lscr not marked overridden")
		}
		if hub := routeNamed(load(t, nil), "dockerhub"); !slices.Equal(hub.AuthHosts, []string{"auth.docker.io", "auth.ipv6.docker.com"}) {
			t.Errorf("built-in dockerhub auth hosts %q", hub.AuthHosts)
		}
	})
	t.Run("shared cache", func(t *testing.T) {
		c := load(t, map[string]string{"RELAY_CACHE_S3_ENDPOINT": "s3.example:9000", "RELAY_CACHE_S3_BUCKET": "relay", "RELAY_CACHE_S3_PREFIX": "/fleet-a/"})
		if c.CacheS3Endpoint != "https://s3.example:9000" || c.CacheS3Prefix != "fleet-a/" || c.CacheS3PathStyle {
			t.Errorf("endpoint %q prefix %q path style %v", c.CacheS3Endpoint, c.CacheS3Prefix, c.CacheS3PathStyle)
		}
	})
	t.Run("trusted proxies", func(t *testing.T) {
		c := load(t, map[string]string{"RELAY_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.7,fd00::1/64"})
		want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("fd00::/64")}
		if !slices.Equal(c.Trusted, want) {
			t.Errorf("Trusted = %v, want %v", c.Trusted, want)
		}
	})
	t.Run("tls and durations", func(t *testing.T) {
		c := load(t, map[string]string{"RELAY_TLS_CERT": "/c.pem", "RELAY_TLS_KEY": "/k.pem", "RELAY_SHUTDOWN_GRACE": "5s", "RELAY_LOG_LEVEL": "DEBUG"})
		if c.TLSCert != "/c.pem" || c.TLSKey != "/k.pem" || c.ShutdownGrace != 5*time.Second {
			t.Errorf("got %+v", c)
		}
	})
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name    string
		environ map[string]string
		want    []string // substrings of the error
	}{
		{"ftp upstream", map[string]string{"DOCKERHUB_UPSTREAM": "ftp://x"}, []string{"DOCKERHUB_UPSTREAM"}},
		{"upstream with path", map[string]string{"QUAY_UPSTREAM": "https://mirror.example/quay"}, []string{"QUAY_UPSTREAM"}},
		{"upstream with userinfo", map[string]string{"GHCR_UPSTREAM": "https://u:p@mirror.example"}, []string{"GHCR_UPSTREAM"}},
		{"upstream with query", map[string]string{"GHCR_UPSTREAM": "https://mirror.example?x=1"}, []string{"GHCR_UPSTREAM"}},
		{"upstream with empty query", map[string]string{"GHCR_UPSTREAM": "https://mirror.example?"}, []string{"GHCR_UPSTREAM"}},
		{"upstream without host", map[string]string{"GHCR_UPSTREAM": "https://"}, []string{"GHCR_UPSTREAM"}},
		{"same domain twice", map[string]string{"DOCKERHUB_ACCESS_DOMAIN": "mirror.test", "QUAY_ACCESS_DOMAIN": "Mirror.Test."},
			[]string{"DOCKERHUB_ACCESS_DOMAIN", "QUAY_ACCESS_DOMAIN"}},
		{"explicit domain clashes with derived", map[string]string{"GCR_ACCESS_DOMAIN": "quay.localhost"},
			[]string{"GCR_ACCESS_DOMAIN", "QUAY_ACCESS_DOMAIN"}},
		{"bad access domain", map[string]string{"MCR_ACCESS_DOMAIN": "mcr.example/x"}, []string{"MCR_ACCESS_DOMAIN"}},
		{"bad auth host", map[string]string{"QUAY_AUTH_HOSTS": "https://a.example"}, []string{"QUAY_AUTH_HOSTS"}},
		{"s3 endpoint without bucket", map[string]string{"RELAY_CACHE_S3_ENDPOINT": "s3.example"}, []string{"RELAY_CACHE_S3_BUCKET"}},
		{"s3 bucket without endpoint", map[string]string{"RELAY_CACHE_S3_BUCKET": "b"}, []string{"RELAY_CACHE_S3_ENDPOINT"}},
		{"peers without self", map[string]string{"RELAY_PEERS": "http://a:1"}, []string{"RELAY_PEER_SELF"}},
		{"peers both ways", map[string]string{"RELAY_PEERS": "http://a:1", "RELAY_PEERS_DNS": "p.svc:8080"}, []string{"RELAY_PEERS_DNS"}},
		{"peer dns without port", map[string]string{"RELAY_PEERS_DNS": "p.svc", "RELAY_PEER_SELF": "http://a:1", "RELAY_PEER_SECRET_FILE": "/x"},
			[]string{"RELAY_PEERS_DNS"}},
		{"self without peers", map[string]string{"RELAY_PEER_SELF": "http://a:1"}, []string{"RELAY_PEERS"}},
		{"missing peer secret", map[string]string{"RELAY_PEERS": "http://a:1", "RELAY_PEER_SELF": "http://a:1", "RELAY_PEER_SECRET_FILE": "/nonexistent"},
			[]string{"RELAY_PEER_SECRET_FILE"}},
		{"s3 endpoint with a path", map[string]string{"RELAY_CACHE_S3_ENDPOINT": "https://s3.example/b", "RELAY_CACHE_S3_BUCKET": "b"},
			[]string{"RELAY_CACHE_S3_ENDPOINT"}},
		{"s3 endpoint not http", map[string]string{"RELAY_CACHE_S3_ENDPOINT": "ftp://s3.example", "RELAY_CACHE_S3_BUCKET": "b"},
			[]string{"RELAY_CACHE_S3_ENDPOINT"}},
		{"auth host with a path", map[string]string{"QUAY_AUTH_HOSTS": "a.example/token"}, []string{"QUAY_AUTH_HOSTS"}},
		{"auth host with a bad port", map[string]string{"QUAY_AUTH_HOSTS": "a.example:99999"}, []string{"QUAY_AUTH_HOSTS"}},
		{"bare IPv6 auth host", map[string]string{"QUAY_AUTH_HOSTS": "::1"}, []string{"QUAY_AUTH_HOSTS", "brackets"}},
		{"credential host with user", map[string]string{"LSCR_CREDENTIAL_HOSTS": "u@ghcr.io"}, []string{"LSCR_CREDENTIAL_HOSTS"}},
		{"bad duration", map[string]string{"RELAY_SHUTDOWN_GRACE": "soon"}, []string{"RELAY_SHUTDOWN_GRACE"}},
		{"negative duration", map[string]string{"RELAY_UPSTREAM_DIAL_TIMEOUT": "-1s"}, []string{"RELAY_UPSTREAM_DIAL_TIMEOUT"}},
		{"bad bool", map[string]string{"GCR_ENABLED": "maybe"}, []string{"GCR_ENABLED"}},
		{"bad global bool", map[string]string{"RELAY_PASS_BLOB_REDIRECTS": "sometimes"}, []string{"RELAY_PASS_BLOB_REDIRECTS"}},
		{"bad int", map[string]string{"RELAY_MAX_REDIRECTS": "many"}, []string{"RELAY_MAX_REDIRECTS"}},
		{"negative redirects", map[string]string{"RELAY_MAX_REDIRECTS": "-1"}, []string{"RELAY_MAX_REDIRECTS"}},
		{"bad log level", map[string]string{"RELAY_LOG_LEVEL": "verbose"}, []string{"RELAY_LOG_LEVEL"}},
		{"bad log format", map[string]string{"RELAY_LOG_FORMAT": "xml"}, []string{"RELAY_LOG_FORMAT"}},
		{"bad public scheme", map[string]string{"RELAY_PUBLIC_SCHEME": "ftp"}, []string{"RELAY_PUBLIC_SCHEME"}},
		{"bad trusted proxy", map[string]string{"RELAY_TRUSTED_PROXIES": "10.0.0.0/8,not-an-ip"}, []string{"RELAY_TRUSTED_PROXIES", "not-an-ip"}},
		{"cert without key", map[string]string{"RELAY_TLS_CERT": "/c.pem"}, []string{"RELAY_TLS_CERT", "RELAY_TLS_KEY"}},
		{"key without cert", map[string]string{"RELAY_TLS_KEY": "/k.pem"}, []string{"RELAY_TLS_CERT", "RELAY_TLS_KEY"}},
		{"listen without port", map[string]string{"RELAY_LISTEN": "8080"}, []string{"RELAY_LISTEN"}},
		{"admin listen without port", map[string]string{"RELAY_ADMIN_LISTEN": "localhost"}, []string{"RELAY_ADMIN_LISTEN"}},
		{"empty base domain", map[string]string{"RELAY_BASE_DOMAIN": " . "}, []string{"RELAY_BASE_DOMAIN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Load(tt.environ)
			if err == nil {
				t.Fatalf("Load(%v) = %+v, want error", tt.environ, c)
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %s", err, s)
				}
			}
		})
	}
}

func TestParseUpstream(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"https://registry.example.com", "https://registry.example.com"},
		{" https://registry.example.com/ ", "https://registry.example.com"},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5000"},
		{"http://[::1]:5000", "http://[::1]:5000"},
		{"registry.example.com", ""},
		{"ftp://registry.example.com", ""},
		{"https://registry.example.com/v2", ""},
		{"https://registry.example.com#frag", ""},
		{"https://registry.example.com?", ""},
		{"https://user@registry.example.com", ""},
		{"https://", ""},
		{"", ""},
	}
	for _, tt := range tests {
		u, err := config.ParseUpstream(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseUpstream(%q) = %v, want error", tt.in, u)
		case tt.want != "" && err != nil:
			t.Errorf("ParseUpstream(%q) error: %v", tt.in, err)
		case tt.want != "" && u.String() != tt.want:
			t.Errorf("ParseUpstream(%q) = %q, want %q", tt.in, u, tt.want)
		}
	}
}

func FuzzParseUpstream(f *testing.F) {
	for _, s := range []string{"https://registry.example.com", "http://127.0.0.1:5000/", "https://x?", "ftp://x", "https://u@x", "http://[::1]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := config.ParseUpstream(s)
		if err != nil {
			return
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			t.Fatalf("ParseUpstream(%q) accepted %#v", s, u)
		}
		// The relay appends "/v2/…" to the rendered URL: it must stay a bare origin.
		ping, err := url.Parse(u.String() + "/v2/")
		if err != nil || ping.Path != "/v2/" || ping.RawQuery != "" || ping.ForceQuery || ping.Host != u.Host {
			t.Fatalf("ParseUpstream(%q) = %q; appending /v2/ gives %#v, %v", s, u, ping, err)
		}
	})
}

// patched is what a built-in route's table entry makes of name.
func patched(b registry.Builtin, name string) string {
	if b.Patch == nil {
		return name
	}
	return b.Patch(name)
}
