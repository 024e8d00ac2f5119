package config

import (
	"cmp"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// loadRoutes builds the enabled built-in and custom routes, deriving unset
// access domains from RELAY_BASE_DOMAIN and refusing a domain used twice.
func (c *Config) loadRoutes(environ map[string]string) error {
	base := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(c.BaseDomain)), ".")
	custom, err := customBuiltins(c.CustomRoutes)
	if err != nil {
		return err
	}
	owner := map[string]string{} // normalized domain -> variable that set it
	c.Policies = map[string]access.RoutePolicy{}
	for _, b := range append(slices.Clone(registry.Builtins), custom...) {
		var re routeEnv
		prefix := b.EnvPrefix() + "_"
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
		if c.Policies[r.Name], err = routeAccess(prefix, re); err != nil {
			return err
		}
		if err := claimDomain(owner, r.AccessDomain, prefix+"ACCESS_DOMAIN"); err != nil {
			return err
		}
		c.Routes = append(c.Routes, r)
	}
	return c.loadMirror(environ, base, owner)
}

func claimDomain(owner map[string]string, domain, varName string) error {
	key := registry.NormalizeHost(domain)
	if prev, dup := owner[key]; dup {
		return fmt.Errorf("%s: access domain %q is already used by %s", varName, domain, prev)
	}
	owner[key] = varName
	return nil
}

// customBuiltins turns RELAY_CUSTOM_ROUTES=ecr,harbor into route
// descriptions read like the built-in ones (ECR_ACCESS_DOMAIN, ...).
func customBuiltins(names []string) ([]registry.Builtin, error) {
	var out []registry.Builtin
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !customName.MatchString(n) {
			return nil, fmt.Errorf("RELAY_CUSTOM_ROUTES: %q is not a route name (lower-case letters, digits and _, starting with a letter)", n)
		}
		for _, b := range append(registry.Builtins, out...) {
			if b.Name == n || b.EnvPrefix() == strings.ToUpper(n) {
				return nil, fmt.Errorf("RELAY_CUSTOM_ROUTES: route %q is defined twice or is a built-in route", n)
			}
		}
		out = append(out, registry.Builtin{Name: n, Subdomain: strings.ReplaceAll(n, "_", "-")})
	}
	return out, nil
}

var customName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

func buildRoute(b registry.Builtin, re routeEnv, base string) (*registry.Route, error) {
	prefix := b.EnvPrefix() + "_"
	domain, err := accessDomain(prefix+"ACCESS_DOMAIN", re.AccessDomain, b.Subdomain, base)
	if err != nil {
		return nil, err
	}
	r := &registry.Route{Name: b.Name, AccessDomain: domain, Patch: b.Patch, Registry: b.Registry}
	upstream := cmp.Or(re.Upstream, b.Upstream)
	if upstream == "" {
		return nil, fmt.Errorf("%sUPSTREAM is required for a custom route", prefix)
	}
	if r.Upstream, err = ParseUpstream(upstream); err != nil {
		return nil, fmt.Errorf("%sUPSTREAM=%q: %w", prefix, upstream, err)
	}
	if b.Upstream != "" {
		builtin, _ := url.Parse(b.Upstream)
		r.BuiltinUpstreamHost = builtin.Host
		// The built-in table's auth and credential hosts belong to the
		// built-in upstream: a route pointed elsewhere trusts only the
		// hosts its operator lists.
		r.UpstreamOverridden = !registry.SameOrigin(r.Upstream, builtin)
		if !r.UpstreamOverridden {
			r.AuthHosts, r.CredentialHosts = normalizeHosts(b.AuthHosts), normalizeHosts(b.CredentialHosts)
		}
	} else {
		if re.LibraryPatch {
			r.Patch = registry.DockerHubRepository
		}
		r.Registry = cmp.Or(re.Registry, r.Upstream.Host)
	}
	if r.AuthHosts, err = appendHosts(r.AuthHosts, prefix+"AUTH_HOSTS", re.AuthHosts); err != nil {
		return nil, err
	}
	if r.CredentialHosts, err = appendHosts(r.CredentialHosts, prefix+"CREDENTIAL_HOSTS", re.CredentialHosts); err != nil {
		return nil, err
	}
	r.Credentials, err = credentials(prefix, re)
	return r, err
}

func accessDomain(varName, set, sub, base string) (string, error) {
	domain := strings.TrimSpace(set)
	if domain == "" {
		if base == "" {
			return "", fmt.Errorf("%s is unset and RELAY_BASE_DOMAIN is empty", varName)
		}
		domain = sub + "." + base
	}
	if err := validateDomain(domain); err != nil {
		return "", fmt.Errorf("%s=%q: %w", varName, domain, err)
	}
	return domain, nil
}

// appendHosts adds a list of "host" or "host:port" entries (AUTH_HOSTS,
// CREDENTIAL_HOSTS) to hosts, normalized as registry.HostMatches reads
// them.
func appendHosts(hosts []string, varName string, values []string) ([]string, error) {
	for _, v := range values {
		v = strings.TrimSpace(v)
		if v == "" {
			continue
		}
		h, err := hostPattern(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %q is not a host or host:port: %w", varName, v, err)
		}
		hosts = append(hosts, h)
	}
	return hosts, nil
}

func hostPattern(v string) (string, error) {
	if strings.ContainsAny(v, "/@ ?#") {
		return "", fmt.Errorf("want no scheme, path or user")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		if strings.Contains(strings.Trim(v, "[]"), ":") && !strings.HasPrefix(v, "[") {
			return "", fmt.Errorf("an IPv6 address needs brackets")
		}
		return registry.NormalizeHost(v), nil
	}
	if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("bad port %q", port)
	}
	return net.JoinHostPort(registry.NormalizeHost(host), port), nil
}

// credentials reads the relay's own account for a route; the password may
// come from a file, as Kubernetes secrets are mounted.
func credentials(prefix string, re routeEnv) (*registry.Credentials, error) {
	password := re.Password
	if re.PasswordFile != "" {
		if password != "" {
			return nil, fmt.Errorf("%sPASSWORD and %sPASSWORD_FILE are both set", prefix, prefix)
		}
		raw, err := os.ReadFile(re.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%sPASSWORD_FILE: %w", prefix, err)
		}
		password = strings.TrimRight(string(raw), "\r\n")
	}
	switch {
	case re.Username == "" && password == "":
		return nil, nil
	case re.Username == "" || password == "":
		return nil, fmt.Errorf("%sUSERNAME and a password (%sPASSWORD or %sPASSWORD_FILE) must be set together", prefix, prefix, prefix)
	}
	return &registry.Credentials{Username: re.Username, Password: password}, nil
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
