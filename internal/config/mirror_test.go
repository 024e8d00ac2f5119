package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/config"
)

func TestMirrorAndCustomRoutes(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := load(t, map[string]string{
		"RELAY_BASE_DOMAIN":          "example.com",
		"DOCKERHUB_UPSTREAM":         "http://127.0.0.1:5000",
		"DOCKERHUB_USERNAME":         "robot",
		"DOCKERHUB_PASSWORD_FILE":    secret,
		"RELAY_CUSTOM_ROUTES":        "ecr,corp_harbor",
		"ECR_UPSTREAM":               "https://public.ecr.aws",
		"CORP_HARBOR_UPSTREAM":       "https://harbor.corp.example",
		"CORP_HARBOR_LIBRARY_PATCH":  "true",
		"DOCKER_HUB_OFFICIAL_IMAGES": `["ubuntu","nginx"]`,
		"FALLBACK_REGISTRY_MAP":      `{"127.0.0.1:5000":"mirror.gcr.io"}`,
	})
	hub := routeNamed(c, "dockerhub")
	if hub.Credentials == nil || hub.Credentials.Password != "s3cret" || strings.Contains(hub.Credentials.String(), "s3cret") {
		t.Errorf("credentials = %v (String must hide the password)", hub.Credentials)
	}
	if hub.Repository("ubuntu") != "library/ubuntu" || hub.Repository("someone") != "someone" {
		t.Error("DOCKER_HUB_OFFICIAL_IMAGES not applied")
	}
	if hub.Fallback == nil || hub.Fallback.String() != "https://mirror.gcr.io" {
		t.Errorf("fallback = %v", hub.Fallback)
	}
	ecr, harbor := routeNamed(c, "ecr"), routeNamed(c, "corp_harbor")
	if ecr == nil || ecr.AccessDomain != "ecr.example.com" || ecr.Registry != "public.ecr.aws" || ecr.Patch != nil {
		t.Errorf("ecr route = %+v", ecr)
	}
	if harbor == nil || harbor.AccessDomain != "corp-harbor.example.com" || harbor.Repository("nginx") != "library/nginx" {
		t.Errorf("corp_harbor route = %+v", harbor)
	}
	m := c.Mirror
	if m == nil || m.AccessDomain != "mirror.example.com" || m.Default != hub {
		t.Fatalf("mirror = %+v", m)
	}
	for ns, want := range map[string]string{"docker.io": "dockerhub", "registry.k8s.io": "k8s", "quay.io": "quay", "public.ecr.aws": "ecr", "harbor.corp.example": "corp_harbor"} {
		if r := m.ForNamespace(ns); r == nil || r.Name != want {
			t.Errorf("ns=%s -> %v, want route %s", ns, r, want)
		}
	}
	if r, rest, ok := m.Split("gcr.io/distroless/static"); !ok || r == nil || r.Name != "gcr" || rest != "distroless/static" {
		t.Errorf("Split(gcr.io/...) = %v %q %v", r, rest, ok)
	}
	if r, _, ok := m.Split("evil.example/x"); !ok || r != nil {
		t.Errorf("an unconfigured registry prefix resolved to %v", r)
	}
	if _, _, ok := m.Split("library/nginx"); ok {
		t.Error("a Docker Hub name was taken for a registry prefix")
	}
}

func TestMirrorMapMakesOwnRoutes(t *testing.T) {
	c := load(t, map[string]string{
		"DOCKER_REGISTRY_MAP": `{"docker.io":"registry-1.docker.io","registry.example":"http://127.0.0.1:7000","default":"dockerhub"}`,
	})
	r := c.Mirror.ForNamespace("registry.example")
	if r == nil || r.Upstream.String() != "http://127.0.0.1:7000" || r.Name != "mirror_127_0_0_1_7000" || r.AccessDomain != "" {
		t.Fatalf("route for registry.example = %+v", r)
	}
	if c.Mirror.Default != routeNamed(c, "dockerhub") {
		t.Error(`"default":"dockerhub" did not name the route`)
	}
}

func TestMirrorErrors(t *testing.T) {
	for _, tt := range []struct {
		name    string
		environ map[string]string
		want    string
	}{
		{"map not JSON", map[string]string{"DOCKER_REGISTRY_MAP": "docker.io=x"}, "DOCKER_REGISTRY_MAP"},
		{"map without default", map[string]string{"DOCKER_REGISTRY_MAP": `{"docker.io":"registry-1.docker.io"}`}, `"default"`},
		{"map key not a registry", map[string]string{"DOCKER_REGISTRY_MAP": `{"library":"x.example","default":"dockerhub"}`}, `"library"`},
		{"map value with path", map[string]string{"DOCKER_REGISTRY_MAP": `{"a.example":"https://b.example/path","default":"dockerhub"}`}, "a.example"},
		{"official not array", map[string]string{"DOCKER_HUB_OFFICIAL_IMAGES": `"ubuntu"`}, "DOCKER_HUB_OFFICIAL_IMAGES"},
		{"official nested name", map[string]string{"DOCKER_HUB_OFFICIAL_IMAGES": `["a/b"]`}, "a/b"},
		{"fallback for no route", map[string]string{"FALLBACK_REGISTRY_MAP": `{"nowhere.example":"x.example"}`}, "nowhere.example"},
		{"fallback bad URL", map[string]string{"FALLBACK_REGISTRY_MAP": `{"gcr.io":"ftp://x"}`}, "FALLBACK_REGISTRY_MAP"},
		{"custom route bad name", map[string]string{"RELAY_CUSTOM_ROUTES": "Bad-Name"}, "RELAY_CUSTOM_ROUTES"},
		{"custom route shadows built-in", map[string]string{"RELAY_CUSTOM_ROUTES": "quay"}, "quay"},
		{"custom route twice", map[string]string{"RELAY_CUSTOM_ROUTES": "ecr,ecr", "ECR_UPSTREAM": "https://public.ecr.aws"}, "ecr"},
		{"custom route without upstream", map[string]string{"RELAY_CUSTOM_ROUTES": "ecr"}, "ECR_UPSTREAM"},
		{"username without password", map[string]string{"DOCKERHUB_USERNAME": "robot"}, "DOCKERHUB_USERNAME"},
		{"password and file", map[string]string{"DOCKERHUB_USERNAME": "r", "DOCKERHUB_PASSWORD": "p", "DOCKERHUB_PASSWORD_FILE": "/f"}, "DOCKERHUB_PASSWORD_FILE"},
		{"password file missing", map[string]string{"DOCKERHUB_USERNAME": "r", "DOCKERHUB_PASSWORD_FILE": "/nonexistent/pw"}, "DOCKERHUB_PASSWORD_FILE"},
		{"mirror domain clash", map[string]string{"MIRROR_ACCESS_DOMAIN": "dhcr.localhost"}, "MIRROR_ACCESS_DOMAIN"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Load(tt.environ)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one mentioning %s", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Error("error shows a password")
			}
		})
	}
}

func TestMirrorOnlyRoutesGetTheMirrorLists(t *testing.T) {
	c := load(t, map[string]string{"MIRROR_ALLOW_CIDRS": "10.0.0.0/8", "MIRROR_DENY_REPOS": "bad/*"})
	r := c.Mirror.ForNamespace("public.ecr.aws")
	if r == nil || r.AccessDomain != "" {
		t.Fatalf("public.ecr.aws route = %+v", r)
	}
	if pol := c.Policies[r.Name]; len(pol.Clients) != 1 || pol.Repos.Permits("bad/x") {
		t.Errorf("mirror-only route lists = %+v", pol)
	}
	if pol := c.Policies["dockerhub"]; len(pol.Clients) != 0 {
		t.Error("the mirror's lists leaked onto a route with variables of its own")
	}
}
