package auth_test

import (
	"errors"
	"net/url"
	"slices"
	"testing"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/registry"
)

const relayRealm = "https://dhcr.example.com/token"

// toRelay maps every upstream realm to the same relay realm.
func toRelay(string) string { return relayRealm }

func TestRewriteBearerRealm(t *testing.T) {
	tests := []struct {
		name        string
		header      string
		wantHeaders []string
		wantRealms  []string
	}{
		{"docker hub",
			`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`,
			[]string{`Bearer realm="` + relayRealm + `",service="registry.docker.io",scope="repository:library/nginx:pull"`},
			[]string{"https://auth.docker.io/token"}},
		{"scope with comma kept",
			`Bearer realm="https://quay.io/v2/auth",service="quay.io",scope="repository:a/b:pull,push"`,
			[]string{`Bearer realm="` + relayRealm + `",service="quay.io",scope="repository:a/b:pull,push"`},
			[]string{"https://quay.io/v2/auth"}},
		{"basic untouched", `Basic realm="Registry Realm"`, []string{`Basic realm="Registry Realm"`}, nil},
		{"basic and bearer split",
			`Basic realm="x", Bearer realm="https://quay.io/v2/auth",service="quay.io"`,
			[]string{`Basic realm="x"`, `Bearer realm="` + relayRealm + `",service="quay.io"`},
			[]string{"https://quay.io/v2/auth"}},
		{"lower-case scheme", `bearer realm="https://gcr.io/v2/token",service="gcr.io"`,
			[]string{`bearer realm="` + relayRealm + `",service="gcr.io"`}, []string{"https://gcr.io/v2/token"}},
		{"missing realm left alone", `Bearer service="s",error="insufficient_scope"`,
			[]string{`Bearer service="s",error="insufficient_scope"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := auth.RewriteBearerRealm(tt.header, toRelay, nil)
			if err != nil {
				t.Fatalf("RewriteBearerRealm error: %v", err)
			}
			if !slices.Equal(got.Headers, tt.wantHeaders) {
				t.Errorf("Headers = %q, want %q", got.Headers, tt.wantHeaders)
			}
			if !slices.Equal(got.Realms, tt.wantRealms) {
				t.Errorf("Realms = %q, want %q", got.Realms, tt.wantRealms)
			}
		})
	}
	if _, err := auth.RewriteBearerRealm(`Bearer realm="unterminated`, toRelay, nil); !errors.Is(err, auth.ErrMalformed) {
		t.Errorf("malformed header: error %v, want ErrMalformed", err)
	}
}

func route(t *testing.T, name, upstream string, overridden bool, authHosts ...string) *registry.Route {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	return &registry.Route{Name: name, Upstream: u, UpstreamOverridden: overridden, AuthHosts: authHosts}
}

func TestValidateRealm(t *testing.T) {
	hub := route(t, "dockerhub", "https://registry-1.docker.io", false, "auth.docker.io", "auth.ipv6.docker.com")
	gcr := route(t, "gcr", "https://gcr.io", false)
	overriddenHTTP := route(t, "dockerhub", "http://127.0.0.1:5000", true, "tokens.internal:9000", "auth.example")
	overriddenHTTPS := route(t, "quay", "https://mirror.internal", true, "auth.example")

	tests := []struct {
		name  string
		route *registry.Route
		realm string
		want  string // the returned URL, or "" for refusal
	}{
		{"allowed auth host", hub, "https://auth.docker.io/token", "https://auth.docker.io/token"},
		{"second auth host", hub, "https://auth.ipv6.docker.com/token", "https://auth.ipv6.docker.com/token"},
		{"upstream host itself", gcr, "https://gcr.io/v2/token", "https://gcr.io/v2/token"},
		{"fragment dropped", gcr, "https://gcr.io/v2/token#x", "https://gcr.io/v2/token"},
		{"query kept", gcr, "https://gcr.io/v2/token?service=gcr.io", "https://gcr.io/v2/token?service=gcr.io"},
		{"other host", hub, "https://auth.evil.example/token", ""},
		{"subdomain of auth host", hub, "https://x.auth.docker.io/token", ""},
		{"http for https upstream", hub, "http://auth.docker.io/token", ""},
		{"userinfo", hub, "https://user:pw@auth.docker.io/token", ""},
		{"non-http scheme", hub, "ftp://auth.docker.io/token", ""},
		{"relative", hub, "/token", ""},
		{"not a URL", hub, "://", ""},
		{"overridden listed host:port", overriddenHTTP, "http://tokens.internal:9000/auth", "http://tokens.internal:9000/auth"},
		{"overridden listed host, https", overriddenHTTP, "https://auth.example/token", "https://auth.example/token"},
		{"overridden own origin", overriddenHTTP, "http://127.0.0.1:5000/token", "http://127.0.0.1:5000/token"},
		{"overridden unlisted host", overriddenHTTP, "http://tokens.other:9000/auth", ""},
		{"overridden listed host, other port", overriddenHTTP, "http://tokens.internal:9001/auth", ""},
		{"overridden host without port, other port", overriddenHTTP, "https://auth.example:8443/token", ""},
		{"overridden upstream host, other port", overriddenHTTP, "http://127.0.0.1:5001/latest/meta-data/", ""},
		{"overridden link-local metadata", overriddenHTTP, "http://169.254.169.254/latest/meta-data/", ""},
		{"overridden still no downgrade", overriddenHTTPS, "http://auth.example/token", ""},
		{"overridden still no other scheme", overriddenHTTP, "file:///etc/passwd", ""},
		{"overridden still no userinfo", overriddenHTTP, "http://u@auth.example/token", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := auth.ValidateRealm(tt.route, tt.realm)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ValidateRealm(%q) = %v, want refusal", tt.realm, u)
				}
				if !errors.Is(err, auth.ErrRealmRefused) {
					t.Errorf("error %v does not wrap ErrRealmRefused", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ValidateRealm(%q) error: %v", tt.realm, err)
			}
			if u.String() != tt.want {
				t.Errorf("ValidateRealm(%q) = %q, want %q", tt.realm, u, tt.want)
			}
		})
	}
}
