package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/registry-relay/registry-relay/internal/registry"
)

// loadRoutes builds the enabled built-in routes, deriving unset access
// domains from RELAY_BASE_DOMAIN and refusing a domain used twice.
func (c *Config) loadRoutes(environ map[string]string) error {
	base := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(c.BaseDomain)), ".")
	owner := map[string]string{} // normalized domain -> variable that set it
	for _, b := range registry.Builtins {
		var re routeEnv
		prefix := b.EnvPrefix + "_"
		if err := env.ParseWithOptions(&re, env.Options{Environment: environ, Prefix: prefix}); err != nil {
			return explain(err, prefix, &re)
		}
		if !re.Enabled {
			continue
		}
		r, err := buildRoute(b, re, base)
		if err != nil {
			return err
		}
		varName := prefix + "ACCESS_DOMAIN"
		key := registry.NormalizeHost(r.AccessDomain)
		if prev, dup := owner[key]; dup {
			return fmt.Errorf("%s: access domain %q is already used by %s", varName, r.AccessDomain, prev)
		}
		owner[key] = varName
		c.Routes = append(c.Routes, r)
	}
	return nil
}

func buildRoute(b registry.Builtin, re routeEnv, base string) (*registry.Route, error) {
	prefix := b.EnvPrefix + "_"
	domain := strings.TrimSpace(re.AccessDomain)
	if domain == "" {
		if base == "" {
			return nil, fmt.Errorf("%sACCESS_DOMAIN is unset and RELAY_BASE_DOMAIN is empty", prefix)
		}
		domain = b.Subdomain + "." + base
	}
	if err := validateDomain(domain); err != nil {
		return nil, fmt.Errorf("%sACCESS_DOMAIN=%q: %w", prefix, domain, err)
	}
	r := &registry.Route{
		Name:            b.Name,
		AccessDomain:    domain,
		LibraryPatch:    b.LibraryPatch,
		AuthHosts:       normalizeHosts(b.AuthHosts),
		CredentialHosts: normalizeHosts(b.CredentialHosts),
	}
	upstream := b.Upstream
	if re.Upstream != "" {
		upstream, r.UpstreamOverridden = re.Upstream, true
	}
	u, err := ParseUpstream(upstream)
	if err != nil {
		return nil, fmt.Errorf("%sUPSTREAM=%q: %w", prefix, upstream, err)
	}
	r.Upstream = u
	for _, h := range re.AuthHosts {
		if h = strings.TrimSpace(h); h != "" {
			if strings.ContainsAny(h, "/:@ ") {
				return nil, fmt.Errorf("%sAUTH_HOSTS: %q is not a host name", prefix, h)
			}
			r.AuthHosts = append(r.AuthHosts, registry.NormalizeHost(h))
		}
	}
	return r, nil
}

// ParseUpstream accepts an http(s) base URL without path, query or user info.
func ParseUpstream(s string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(strings.TrimSpace(s), "/"))
	if err != nil {
		return nil, err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("scheme must be http or https")
	case u.Host == "":
		return nil, fmt.Errorf("missing host")
	case u.User != nil:
		return nil, fmt.Errorf("credentials in the URL are not supported")
	case u.Path != "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return nil, fmt.Errorf("want a base URL like https://registry.example.com, without path or query")
	}
	return u, nil
}

func validateDomain(d string) error {
	if strings.ContainsAny(d, "/@ \t?#") || strings.Trim(d, ".") == "" {
		return fmt.Errorf("not a host name")
	}
	return nil
}

func normalizeHosts(hs []string) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = registry.NormalizeHost(h)
	}
	return out
}
