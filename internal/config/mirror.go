package config

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/caarlos0/env/v11"

	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// loadMirror applies DOCKER_HUB_OFFICIAL_IMAGES and FALLBACK_REGISTRY_MAP
// to the routes and builds the mirror host from DOCKER_REGISTRY_MAP.
func (c *Config) loadMirror(environ map[string]string, base string, owner map[string]string) error {
	all := c.Routes
	if c.MirrorEnabled {
		domain, err := accessDomain("MIRROR_ACCESS_DOMAIN", c.MirrorDomain, "mirror", base)
		if err != nil {
			return err
		}
		if err := claimDomain(owner, domain, "MIRROR_ACCESS_DOMAIN"); err != nil {
			return err
		}
		regMap := maps.Clone(registry.DefaultRegistryMap)
		if c.RegistryMap != "" {
			regMap = map[string]string{}
			if err := strictJSON(c.RegistryMap, &regMap); err != nil {
				return fmt.Errorf("DOCKER_REGISTRY_MAP: %w", err)
			}
		}
		if c.Mirror, err = registry.NewMirror(domain, regMap, c.Routes); err != nil {
			return fmt.Errorf("DOCKER_REGISTRY_MAP: %w", err)
		}
		if err := c.mirrorRouteAccess(environ, c.Mirror.Routes()); err != nil {
			return err
		}
		all = append(slices.Clone(all), c.Mirror.Routes()...)
	}
	if err := c.applyOfficial(all); err != nil {
		return err
	}
	return c.applyFallbacks(all)
}

// mirrorAccessEnv holds the lists for routes that exist only behind the
// mirror host (DOCKER_REGISTRY_MAP entries that match no configured route):
// they have no variables of their own.
type mirrorAccessEnv struct {
	AllowRepos []string `env:"MIRROR_ALLOW_REPOS" envSeparator:","`
	DenyRepos  []string `env:"MIRROR_DENY_REPOS" envSeparator:","`
	AllowCIDRs []string `env:"MIRROR_ALLOW_CIDRS" envSeparator:","`
}

func (c *Config) mirrorRouteAccess(environ map[string]string, routes []*registry.Route) error {
	var me mirrorAccessEnv
	if err := env.ParseWithOptions(&me, env.Options{Environment: environ}); err != nil {
		return explain(err, "", &me)
	}
	pol, err := routeAccess("MIRROR_", routeEnv{AllowRepos: me.AllowRepos, DenyRepos: me.DenyRepos, AllowCIDRs: me.AllowCIDRs})
	if err != nil {
		return err
	}
	for _, r := range routes {
		c.Policies[r.Name] = pol
	}
	return nil
}

func (c *Config) applyOfficial(routes []*registry.Route) error {
	if c.OfficialImages == "" {
		return nil
	}
	var names []string
	if err := strictJSON(c.OfficialImages, &names); err != nil {
		return fmt.Errorf("DOCKER_HUB_OFFICIAL_IMAGES: want a JSON array of image names: %w", err)
	}
	official := map[string]bool{}
	for _, n := range names {
		if strings.Contains(n, "/") || oci.ValidateName(n) != nil {
			return fmt.Errorf("DOCKER_HUB_OFFICIAL_IMAGES: %q is not a single-segment image name", n)
		}
		official[n] = true
	}
	for _, r := range routes {
		if r.Patch != nil {
			r.Official = official
		}
	}
	return nil
}

// applyFallbacks reads FALLBACK_REGISTRY_MAP: upstream host -> fallback
// upstream host or base URL.
func (c *Config) applyFallbacks(routes []*registry.Route) error {
	if c.FallbackMap == "" {
		return nil
	}
	var fb map[string]string
	if err := strictJSON(c.FallbackMap, &fb); err != nil {
		return fmt.Errorf("FALLBACK_REGISTRY_MAP: want a JSON object: %w", err)
	}
	for primary, fallback := range fb {
		raw := fallback
		if !strings.Contains(raw, "://") {
			raw = "https://" + raw
		}
		u, err := ParseUpstream(raw)
		if err != nil {
			return fmt.Errorf("FALLBACK_REGISTRY_MAP: %q -> %q: %w", primary, fallback, err)
		}
		matched := false
		for _, r := range routes {
			if strings.EqualFold(r.Upstream.Host, primary) || strings.EqualFold(r.BuiltinUpstreamHost, primary) || r.Name == primary {
				r.Fallback, matched = u, true
			}
		}
		if !matched {
			return fmt.Errorf("FALLBACK_REGISTRY_MAP: no route has upstream %q", primary)
		}
	}
	return nil
}

func strictJSON(s string, v any) error {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}
