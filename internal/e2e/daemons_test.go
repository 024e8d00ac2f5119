//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitSocket waits for a daemon's unix socket to appear.
func waitSocket(path string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not appear", path)
}

// --- containerd (ctr) ---

// ctr drives a containerd of its own (own root, state and socket, CRI
// off) over plain HTTP; ctr has no login, so credentials go with --user.
type ctr struct {
	socket   string
	user     string
	hostsDir string // containerd's hosts.toml files, pointing at the mirror host
}

func (c *ctr) name() string { return "containerd" }
func (c *ctr) setup(t *testing.T, w *world) string {
	c.hostsDir = hostsDir(t, w, mirroredRegistries)
	if _, ok := tool("containerd"); !ok {
		return "containerd not installed (apt-get install containerd)"
	}
	if _, ok := tool("ctr"); !ok {
		return "ctr not installed"
	}
	dir, err := os.MkdirTemp("", "e2e-containerd-") // unix socket paths must stay short
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c.socket = filepath.Join(dir, "c.sock")
	config := fmt.Sprintf("version = 2\nroot = %q\nstate = %q\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = %q\n",
		filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.socket)
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "containerd", nil, "--config", cfgPath)
	if err := waitSocket(c.socket); err != nil {
		return "containerd did not start: " + err.Error()
	}
	return ""
}
func (c *ctr) cmd(ctx context.Context, args ...string) (string, error) {
	return run(ctx, nil, "ctr", append([]string{"--address", c.socket, "--namespace", "e2e"}, args...)...)
}
func (c *ctr) login(_ context.Context, _ string, cred credential) (string, error) {
	c.user = cred.user + ":" + cred.password
	return "", nil
}
func (c *ctr) logout(context.Context, string) (string, error) { c.user = ""; return "", nil }
func (c *ctr) pull(ctx context.Context, _ *testing.T, ref string) (pullResult, string, error) {
	return c.pullWith(ctx, ref, "--plain-http")
}

func (c *ctr) pullWith(ctx context.Context, ref string, extra ...string) (pullResult, string, error) {
	args := append([]string{"image", "pull", "--snapshotter", "native"}, extra...)
	if c.user != "" {
		args = append(args, "--user", c.user)
	}
	out, err := c.cmd(ctx, append(args, ref)...)
	if err != nil {
		return pullResult{}, out, err
	}
	list, err := c.cmd(ctx, "image", "ls")
	if err != nil {
		return pullResult{}, out + list, err
	}
	var res pullResult
	for _, line := range strings.Split(list, "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[0] == ref {
			res.digest = digestRE.FindString(line)
		}
	}
	content, err := c.cmd(ctx, "content", "ls", "--quiet")
	res.layers = strings.Fields(content)
	return res, out, err
}
func (c *ctr) forget(ctx context.Context, ref string) {
	_, _ = c.cmd(ctx, "image", "rm", "--sync", ref)
}

// --- Docker ---

// docker drives a dockerd of its own; the relay's 127.0.0.1 addresses
// are insecure registries for it, as they are by default.
type docker struct {
	env []string
}

func (c *docker) name() string { return "docker" }
func (c *docker) setup(t *testing.T, w *world) string {
	if _, ok := tool("dockerd"); !ok {
		return "dockerd not installed (apt-get install docker.io)"
	}
	dir, err := os.MkdirTemp("", "e2e-docker-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	socket := filepath.Join(dir, "d.sock")
	cfg := filepath.Join(dir, "daemon.json")
	// Docker Hub references go to the relay's mirror host, as with a
	// production registry-mirrors setting.
	conf := `{"storage-driver":"vfs","iptables":false,"ip6tables":false,"bridge":"none","insecure-registries":["127.0.0.0/8"],` +
		`"registry-mirrors":["http://` + w.relay.host(mirrorDomain) + `"]}`
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	startProcess(t, "dockerd", nil, "--config-file", cfg, "--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"), "--pidfile", filepath.Join(dir, "d.pid"), "-H", "unix://"+socket)
	if err := waitSocket(socket); err != nil {
		return "dockerd did not start: " + err.Error()
	}
	c.env = []string{"DOCKER_HOST=unix://" + socket, "DOCKER_CONFIG=" + filepath.Join(dir, "config")}
	for range 100 {
		if _, err := run(context.Background(), c.env, "docker", "info"); err == nil {
			return ""
		}
		time.Sleep(200 * time.Millisecond)
	}
	return "dockerd did not answer"
}
func (c *docker) login(ctx context.Context, host string, cred credential) (string, error) {
	return run(ctx, c.env, "docker", "login", "-u", cred.user, "-p", cred.password, host)
}
func (c *docker) logout(ctx context.Context, host string) (string, error) {
	return run(ctx, c.env, "docker", "logout", host)
}
func (c *docker) pull(ctx context.Context, _ *testing.T, ref string) (pullResult, string, error) {
	out, err := run(ctx, c.env, "docker", "pull", ref)
	if err != nil {
		return pullResult{}, out, err
	}
	var res pullResult
	for _, line := range strings.Split(out, "\n") {
		if d, ok := strings.CutPrefix(line, "Digest: "); ok {
			res.digest = strings.TrimSpace(d)
		}
	}
	layers, err := run(ctx, c.env, "docker", "image", "inspect", "--format", "{{range .RootFS.Layers}}{{.}} {{end}}", ref)
	res.layers = strings.Fields(layers)
	return res, out, err
}
func (c *docker) forget(ctx context.Context, ref string) {
	_, _ = run(ctx, c.env, "docker", "rmi", "-f", ref)
}
