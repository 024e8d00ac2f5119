package registry_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/registry"
)

func FuzzScopeRepository(f *testing.F) {
	for _, s := range []string{
		"repository:nginx:pull", "repository(plugin):x:pull", "repository:a:5000/b:pull", "repository::", "repository:",
		"registry:catalog:*", ":", "repository", "repository(:x:y", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		name, ok := registry.ScopeRepository(scope)
		if !ok {
			if name != "" {
				t.Fatalf("ScopeRepository(%q) = %q without ok", scope, name)
			}
			return
		}
		typ, rest, _ := strings.Cut(scope, ":")
		if typ != "repository" && !strings.HasPrefix(typ, "repository(") {
			t.Fatalf("ScopeRepository(%q) accepted type %q", scope, typ)
		}
		actions, found := strings.CutPrefix(rest, name+":")
		if !found || strings.Contains(actions, ":") {
			t.Fatalf("ScopeRepository(%q) = %q: not the part between the type and the actions", scope, name)
		}
	})
}

func FuzzMapScopeNames(f *testing.F) {
	for _, s := range []string{
		"repository:nginx:pull", "repository:a:pull repository:b:push", "registry:catalog:* repository:x:*",
		"repository(plugin):x:pull", "  ", "repository::pull", "repository:a:b:c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, scope string) {
		// Scopes are split on any white space and joined with one space.
		if got := registry.MapScopeNames(scope, func(n string) string { return n }); got != strings.Join(strings.Fields(scope), " ") {
			t.Fatalf("identity mapping changed %q to %q", scope, got)
		}
		mapped := registry.MapScopeNames(scope, func(string) string { return "mapped/name" })
		in, out := strings.Fields(scope), strings.Fields(mapped)
		if len(in) != len(out) {
			t.Fatalf("scope count changed: %q -> %q", scope, mapped)
		}
		for i := range in {
			name, ok := registry.ScopeRepository(in[i])
			switch {
			case !ok && out[i] != in[i]:
				t.Fatalf("non-repository scope %q changed to %q", in[i], out[i])
			case ok:
				typ, _, _ := strings.Cut(in[i], ":")
				want := typ + ":mapped/name" + in[i][len(typ)+1+len(name):]
				if out[i] != want {
					t.Fatalf("scope %q mapped to %q, want %q", in[i], out[i], want)
				}
			}
		}
	})
}

// FuzzMirrorSplit feeds client repository names to the mirror host's
// registry-prefix split.
func FuzzMirrorSplit(f *testing.F) {
	hub := &registry.Route{Name: "dockerhub", Upstream: &url.URL{Scheme: "https", Host: "registry-1.docker.io"}, Registry: "docker.io", Patch: registry.DockerHubRepository}
	gcr := &registry.Route{Name: "gcr", Upstream: &url.URL{Scheme: "https", Host: "gcr.io"}, Registry: "gcr.io"}
	m, err := registry.NewMirror("mirror.test", registry.DefaultRegistryMap, []*registry.Route{hub, gcr})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"gcr.io/distroless/static", "library/nginx", "nginx", "localhost/x", "localhost:5000/x", "GCR.IO/x", "unknown.example/x",
		"gcr.io", "/x", "a.b/", "quay.io/prometheus/prometheus", ":/", "gcr.io./x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		route, rest, ok := m.Split(name)
		if !ok {
			if route != nil || rest != name {
				t.Fatalf("Split(%q) = %v, %q without a registry prefix", name, route, rest)
			}
			return
		}
		first, _, _ := strings.Cut(name, "/")
		if first+"/"+rest != name {
			t.Fatalf("Split(%q): %q + %q is not the name", name, first, rest)
		}
		if !strings.ContainsAny(first, ".:") && first != "localhost" {
			t.Fatalf("Split(%q) took %q for a registry name", name, first)
		}
		if route != nil && route.Upstream == nil {
			t.Fatalf("Split(%q) returned a route without upstream", name)
		}
		_ = m.ForNamespace(name)
	})
}
