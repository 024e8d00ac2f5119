package registry_test

import (
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/registry"
)

func TestDockerHubRepository(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nginx", "library/nginx"},
		{"library/nginx", "library/nginx"},
		{"bitnami/redis", "bitnami/redis"},
		{"a/b/c", "a/b/c"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := registry.DockerHubRepository(tt.in); got != tt.want {
			t.Errorf("DockerHubRepository(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestMapScopeNames maps with the Docker Hub patch, as the dockerhub route does.
func TestMapScopeNames(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"single", "repository:nginx:pull", "repository:library/nginx:pull"},
		{"already prefixed", "repository:library/nginx:pull", "repository:library/nginx:pull"},
		{"nested", "repository:bitnami/redis:pull", "repository:bitnami/redis:pull"},
		{"several actions", "repository:nginx:pull,push", "repository:library/nginx:pull,push"},
		{"wildcard action", "repository:nginx:*", "repository:library/nginx:*"},
		{"resource class", "repository(plugin):x:pull", "repository(plugin):library/x:pull"},
		{"catalog", "registry:catalog:*", "registry:catalog:*"},
		{"several scopes",
			"repository:nginx:pull repository:bitnami/redis:pull registry:catalog:* repository:alpine:pull,push",
			"repository:library/nginx:pull repository:bitnami/redis:pull registry:catalog:* repository:library/alpine:pull,push"},
		{"empty", "", ""},
		{"no actions", "repository:nginx", "repository:nginx"},
		{"no colon", "nginx", "nginx"},
		{"empty name", "repository::pull", "repository::pull"},
		{"other type", "repo:nginx:pull", "repo:nginx:pull"},
		{"type prefix only", "repositoryx:nginx:pull", "repositoryx:nginx:pull"},
		{"name with port-like colon", "repository:a:b:pull", "repository:library/a:b:pull"},
		{"white space collapsed", "repository:a:pull  repository:b:pull", "repository:library/a:pull repository:library/b:pull"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := registry.MapScopeNames(tt.in, registry.DockerHubRepository); got != tt.want {
				t.Errorf("MapScopeNames(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRoutePatchesOnlyWithPatch(t *testing.T) {
	hub := &registry.Route{Name: "dockerhub", Patch: registry.DockerHubRepository}
	quay := &registry.Route{Name: "quay"}
	if got := hub.Repository("nginx"); got != "library/nginx" {
		t.Errorf("dockerhub Repository = %q", got)
	}
	if got := registry.MapScopeNames("repository:nginx:pull registry:catalog:*", hub.Repository); got != "repository:library/nginx:pull registry:catalog:*" {
		t.Errorf("dockerhub scope = %q", got)
	}
	official := &registry.Route{Name: "dockerhub", Patch: registry.DockerHubRepository, Official: map[string]bool{"ubuntu": true}}
	if official.Repository("ubuntu") != "library/ubuntu" || official.Repository("nginx") != "nginx" {
		t.Error("Official does not limit the library/ patch")
	}
	if got := quay.Repository("nginx"); got != "nginx" {
		t.Errorf("quay Repository = %q", got)
	}
	if got := registry.MapScopeNames("repository:nginx:pull", quay.Repository); got != "repository:nginx:pull" {
		t.Errorf("quay scope = %q", got)
	}
}

// FuzzDockerHubScopePatch checks that the dockerhub route's scope patch is
// idempotent: a scope already patched (library/nginx) is left alone.
func FuzzDockerHubScopePatch(f *testing.F) {
	for _, s := range []string{
		"repository:nginx:pull", "repository:library/nginx:pull", "repository(plugin):x:pull",
		"registry:catalog:*", "repository:a:b:pull repository:c:push", "", " ", "repository::",
		"repository:nginx:pull\trepository:secret:pull",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := registry.MapScopeNames(s, registry.DockerHubRepository)
		if twice := registry.MapScopeNames(once, registry.DockerHubRepository); twice != once {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, once, twice)
		}
		// Scopes are split on any white space and joined with one space.
		if got, want := len(strings.Fields(once)), len(strings.Fields(s)); got != want {
			t.Fatalf("scope count changed: %q -> %q", s, once)
		}
		if !strings.Contains(s, "repository") && once != strings.Join(strings.Fields(s), " ") {
			t.Fatalf("non-repository scope changed: %q -> %q", s, once)
		}
	})
}

func TestFilterScopes(t *testing.T) {
	deny := func(name string) bool { return !strings.HasPrefix(name, "secret/") }
	for in, want := range map[string]string{
		"repository:a/b:pull repository:secret/x:pull":         "repository:a/b:pull",
		"repository:a/b:pull\trepository:secret/x:pull":        "repository:a/b:pull",
		"repository(plugin):secret/x:pull registry:catalog:*":  "registry:catalog:*",
		"Repository:secret/x:pull REPOSITORY(x):secret/y:pull": "",
		"repository:secret/x repository:a:pull":                "repository:a:pull", // no actions: not a scope we can judge
		"registry:catalog:*":                                   "registry:catalog:*",
		"  ":                                                   "",
	} {
		if got := registry.FilterScopes(in, deny); got != want {
			t.Errorf("FilterScopes(%q) = %q, want %q", in, got, want)
		}
	}
	if got := registry.MapScopeNames("repository:nginx:pull\trepository:secret:pull", registry.DockerHubRepository); got != "repository:library/nginx:pull repository:library/secret:pull" {
		t.Errorf("a tab-separated scope value is mapped as %q", got)
	}
}
