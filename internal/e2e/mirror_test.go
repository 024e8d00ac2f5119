//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// mirrorClient is a client configured, the way its users configure it, to
// reach registries through the relay's mirror host: containerd hosts.toml,
// podman registries.conf, Docker registry-mirrors.
type mirrorClient interface {
	// mirrors lists the registries the client's configuration sends to
	// the mirror (Docker mirrors Docker Hub only).
	mirrors() []string
	pullViaMirror(ctx context.Context, t *testing.T, ref string) (pullResult, string, error)
}

type mirrorCase struct {
	registry, ref string
	want          v1.Hash
}

func (w *world) mirrorCases() []mirrorCase {
	return []mirrorCase{
		{"docker.io", "docker.io/library/alpine:latest", w.img.list},
		{"docker.io", "docker.io/someuser/app:1.0", w.img.app},
		{"registry.k8s.io", "registry.k8s.io/pause:3.10", w.img.pause},
		{"ghcr.io", "ghcr.io/library/ociindex:latest", w.img.index},
	}
}

// testMirror pulls registry-qualified references that the client's own
// mirror configuration sends to the relay. The registries themselves are
// unreachable here, so a pull that did not go through the mirror fails.
func testMirror(t *testing.T, w *world, name string, c mirrorClient) {
	served := map[string]bool{}
	for _, r := range c.mirrors() {
		served[r] = true
	}
	for _, mc := range w.mirrorCases() {
		if !served[mc.registry] {
			continue
		}
		t.Run("mirror "+mc.ref, func(t *testing.T) {
			start := time.Now()
			ctx := context.Background()
			res, out, err := c.pullViaMirror(ctx, t, mc.ref)
			c.(client).forget(ctx, mc.ref)
			label := "mirror: " + mc.ref
			switch {
			case err != nil:
				err = failure("pull", err, out)
			case res.digest != mc.want.String():
				err = failure("digest", nil, "pulled "+res.digest+", pushed "+mc.want.String())
			}
			if err != nil {
				record(name, label, "FAIL", err.Error())
				t.Error(err)
				return
			}
			record(name, label, "PASS", "digest "+res.digest[:19]+" "+time.Since(start).Round(time.Millisecond).String())
		})
	}
}

// hostsDir writes containerd's hosts.toml for each registry, pointing at
// the mirror host over plain HTTP, as examples/containerd documents.
func hostsDir(t *testing.T, w *world, registries []string) string {
	dir := t.TempDir()
	for _, reg := range registries {
		d := filepath.Join(dir, reg)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("server = \"https://%s\"\n\n[host.\"http://%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
			reg, w.relay.host(mirrorDomain))
		if err := os.WriteFile(filepath.Join(d, "hosts.toml"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// registriesConf writes podman's registries.conf with a mirror location
// per registry on the mirror host, as examples/ documents.
func registriesConf(t *testing.T, w *world, registries []string) string {
	conf := "unqualified-search-registries = []\n"
	for _, reg := range registries {
		conf += fmt.Sprintf("\n[[registry]]\nlocation = %q\n[[registry.mirror]]\nlocation = \"%s/%s\"\ninsecure = true\n",
			reg, w.relay.host(mirrorDomain), reg)
	}
	path := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

var mirroredRegistries = []string{"docker.io", "registry.k8s.io", "ghcr.io"}

func (c *ctr) mirrors() []string { return mirroredRegistries }
func (c *ctr) pullViaMirror(ctx context.Context, _ *testing.T, ref string) (pullResult, string, error) {
	return c.pullWith(ctx, ref, "--hosts-dir", c.hostsDir)
}

func (c *podman) mirrors() []string { return mirroredRegistries }
func (c *podman) pullViaMirror(ctx context.Context, t *testing.T, ref string) (pullResult, string, error) {
	conf := registriesConf(t, c.world, mirroredRegistries)
	saved := c.env
	c.env = append(append([]string{}, c.env...), "CONTAINERS_REGISTRIES_CONF="+conf)
	defer func() { c.env = saved }()
	return c.pullWith(ctx, ref)
}

func (c *docker) mirrors() []string { return []string{"docker.io"} }
func (c *docker) pullViaMirror(ctx context.Context, _ *testing.T, ref string) (pullResult, string, error) {
	return c.pull(ctx, nil, ref)
}
