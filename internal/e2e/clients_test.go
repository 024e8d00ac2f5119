//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pullResult is what a client reports about one pull: the top-level
// manifest digest it resolved and the layer digests (compressed) or
// diff IDs (uncompressed) it stored.
type pullResult struct {
	digest string
	layers []string
}

// client is one real registry client driven through its CLI.
type client interface {
	name() string
	// setup prepares isolated state (config dirs, daemons); a non-empty
	// return value is the reason the client is skipped.
	setup(t *testing.T, w *world) string
	login(ctx context.Context, host string, cred credential) (string, error)
	logout(ctx context.Context, host string) (string, error)
	// pull fetches ref with everything a user would fetch, so layers are
	// downloaded through the relay, and reports what was stored.
	pull(ctx context.Context, t *testing.T, ref string) (pullResult, string, error)
	// forget removes what pull stored so the next pull downloads again.
	forget(ctx context.Context, ref string)
}

// ociLayout reads index.json of an OCI layout and lists its blobs.
func ociLayout(dir string) (pullResult, error) {
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return pullResult{}, err
	}
	var idx struct {
		Manifests []struct{ Digest string } `json:"manifests"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil || len(idx.Manifests) == 0 {
		return pullResult{}, fmt.Errorf("index.json: %v (%s)", err, raw)
	}
	res := pullResult{digest: idx.Manifests[0].Digest}
	blobs, _ := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	for _, b := range blobs {
		// The blob's name is its digest only if its bytes say so.
		if sum, err := fileSHA256(b); err == nil && sum == filepath.Base(b) {
			res.layers = append(res.layers, "sha256:"+sum)
		}
	}
	return res, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// plainTempDir is a temporary directory whose path has no commas or
// colons, which regctl's ocidir references cannot hold (test names do).
func plainTempDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// emptyAuthFile creates the credentials file podman and skopeo are pointed
// at; podman refuses to pull when REGISTRY_AUTH_FILE names a missing file.
func emptyAuthFile(t *testing.T, dir string) string {
	path := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var digestRE = regexp.MustCompile(`sha256:[a-f0-9]{64}`)

// --- crane ---

type crane struct{ env []string }

func (c *crane) name() string { return "crane" }
func (c *crane) setup(t *testing.T, _ *world) string {
	if _, ok := tool("crane"); !ok {
		return "crane not installed"
	}
	c.env = []string{"DOCKER_CONFIG=" + t.TempDir()}
	return ""
}
func (c *crane) login(ctx context.Context, host string, cred credential) (string, error) {
	return run(ctx, c.env, "crane", "auth", "login", host, "-u", cred.user, "-p", cred.password)
}
func (c *crane) logout(ctx context.Context, host string) (string, error) {
	return run(ctx, c.env, "crane", "auth", "logout", host)
}
func (c *crane) pull(ctx context.Context, t *testing.T, ref string) (pullResult, string, error) {
	dir := filepath.Join(t.TempDir(), "layout")
	out, err := run(ctx, c.env, "crane", "pull", "--insecure", "--format", "oci", ref, dir)
	if err != nil {
		return pullResult{}, out, err
	}
	res, err := ociLayout(dir)
	return res, out, err
}
func (c *crane) forget(context.Context, string) {}

// --- regctl ---

type regctl struct{ env []string }

func (c *regctl) name() string { return "regctl" }
func (c *regctl) setup(t *testing.T, w *world) string {
	if _, ok := tool("regctl"); !ok {
		return "regctl not installed"
	}
	c.env = []string{"HOME=" + t.TempDir()}
	for _, h := range w.hosts() {
		// regctl pings the registry too; a relay that wants a login
		// answers 401, and regctl keeps the setting but exits 1.
		if out, err := run(context.Background(), c.env, "regctl", "registry", "set", "--tls", "disabled", h); err != nil &&
			!strings.Contains(out, "configuration still updated") {
			t.Fatalf("regctl registry set %s: %v\n%s", h, err, out)
		}
	}
	return ""
}
func (c *regctl) login(ctx context.Context, host string, cred credential) (string, error) {
	return run(ctx, c.env, "regctl", "registry", "login", host, "-u", cred.user, "-p", cred.password)
}
func (c *regctl) logout(ctx context.Context, host string) (string, error) {
	return run(ctx, c.env, "regctl", "registry", "logout", host)
}
func (c *regctl) pull(ctx context.Context, t *testing.T, ref string) (pullResult, string, error) {
	dir := filepath.Join(plainTempDir(t), "layout")
	out, err := run(ctx, c.env, "regctl", "image", "copy", ref, "ocidir://"+dir+":pulled")
	if err != nil {
		return pullResult{}, out, err
	}
	res, err := ociLayout(dir)
	return res, out, err
}
func (c *regctl) forget(context.Context, string) {}

// --- skopeo ---

// skopeo copies to an OCI layout (all it needs) and, where podman's
// storage library works, to containers-storage too. An OCI layout cannot
// hold a Docker manifest list, so skopeo converts it; the digest is
// therefore read with `skopeo inspect --raw`, through the relay as well.
type skopeo struct {
	env     []string
	storage string // containers-storage spec "[vfs@root+runroot]", or ""
}

func (c *skopeo) name() string { return "skopeo" }
func (c *skopeo) setup(t *testing.T, _ *world) string {
	if _, ok := tool("skopeo"); !ok {
		return "skopeo not installed (apt-get install skopeo)"
	}
	dir := t.TempDir()
	c.env = []string{"REGISTRY_AUTH_FILE=" + emptyAuthFile(t, dir)}
	if _, ok := tool("podman"); ok {
		c.storage = "[vfs@" + filepath.Join(dir, "root") + "+" + filepath.Join(dir, "run") + "]"
	}
	return ""
}
func (c *skopeo) login(ctx context.Context, host string, cred credential) (string, error) {
	return run(ctx, c.env, "skopeo", "login", "--tls-verify=false", "-u", cred.user, "-p", cred.password, host)
}
func (c *skopeo) logout(ctx context.Context, host string) (string, error) {
	return run(ctx, c.env, "skopeo", "logout", host)
}
func (c *skopeo) pull(ctx context.Context, t *testing.T, ref string) (pullResult, string, error) {
	raw, err := run(ctx, c.env, "skopeo", "inspect", "--tls-verify=false", "--raw", "docker://"+ref)
	if err != nil {
		return pullResult{}, raw, err
	}
	sum := sha256.Sum256([]byte(raw))
	dir := filepath.Join(t.TempDir(), "layout")
	out, err := run(ctx, c.env, "skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+dir+":pulled")
	if err != nil {
		return pullResult{}, out, err
	}
	res, err := ociLayout(dir)
	if err != nil {
		return pullResult{}, out, err
	}
	res.digest = "sha256:" + hex.EncodeToString(sum[:])
	if c.storage != "" {
		more, err := run(ctx, c.env, "skopeo", "copy", "--src-tls-verify=false", "docker://"+ref, "containers-storage:"+c.storage+ref)
		out += more
		if err != nil {
			return pullResult{}, out, fmt.Errorf("copy to containers-storage: %w", err)
		}
	}
	return res, out, nil
}
func (c *skopeo) forget(ctx context.Context, ref string) {
	if c.storage != "" {
		_, _ = run(ctx, c.env, "skopeo", "delete", "containers-storage:"+c.storage+ref)
	}
}

// --- podman ---

type podman struct {
	env   []string
	flags []string
	world *world
}

func (c *podman) name() string { return "podman" }
func (c *podman) setup(t *testing.T, w *world) string {
	c.world = w
	if _, ok := tool("podman"); !ok {
		return "podman not installed (apt-get install podman)"
	}
	dir := t.TempDir()
	c.env = []string{"REGISTRY_AUTH_FILE=" + emptyAuthFile(t, dir)}
	c.flags = []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
	return ""
}
func (c *podman) cmd(ctx context.Context, args ...string) (string, error) {
	return run(ctx, c.env, "podman", append(append([]string{}, c.flags...), args...)...)
}
func (c *podman) login(ctx context.Context, host string, cred credential) (string, error) {
	return c.cmd(ctx, "login", "--tls-verify=false", "-u", cred.user, "-p", cred.password, host)
}
func (c *podman) logout(ctx context.Context, host string) (string, error) {
	return c.cmd(ctx, "logout", host)
}
func (c *podman) pull(ctx context.Context, _ *testing.T, ref string) (pullResult, string, error) {
	return c.pullWith(ctx, ref, "--tls-verify=false")
}

func (c *podman) pullWith(ctx context.Context, ref string, extra ...string) (pullResult, string, error) {
	out, err := c.cmd(ctx, append(append([]string{"pull"}, extra...), ref)...)
	if err != nil {
		return pullResult{}, out, err
	}
	info, err := c.cmd(ctx, "image", "inspect", "--format", "{{.Digest}} {{range .RootFS.Layers}}{{.}} {{end}}", ref)
	if err != nil {
		return pullResult{}, out + info, err
	}
	fields := strings.Fields(info)
	return pullResult{digest: fields[0], layers: fields[1:]}, out, nil
}
func (c *podman) forget(ctx context.Context, ref string) { _, _ = c.cmd(ctx, "rmi", "-f", ref) }
