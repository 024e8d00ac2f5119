// Command demo is "a first pull in one command": it starts two in-process
// registries, one standing in for Docker Hub (token auth, a private
// namespace) and one for registry.k8s.io (anonymous), seeds them, and
// serves registry-relay in front of both. Nothing leaves the machine, and
// the commands it prints need no /etc/hosts or daemon.json edits.
//
// Run it with `make demo`, which installs ./bin/crane first.
package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v11"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// After the first signal starts the drain, a second one kills at once.
	context.AfterFunc(ctx, stop)
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run starts and seeds the upstreams, then serves the relay until ctx is
// done; the upstreams close only after the relay has drained.
func run(ctx context.Context, out, logOut io.Writer) error {
	ups, err := startUpstreams(ctx)
	if err != nil {
		return err
	}
	defer ups.Close()

	cfg, err := config.Load(demoEnv(env.ToMap(os.Environ()), ups))
	if err != nil {
		return err
	}
	a, err := app.New(cfg, logOut)
	if err != nil {
		return err
	}
	// Listen before printing, so the commands carry the ports actually bound.
	mainLn, adminLn, err := app.Listen(cfg)
	if err != nil {
		return err
	}
	printInstructions(out, ups, port(mainLn), port(adminLn))
	return a.ServeListeners(ctx, mainLn, adminLn)
}

// demoEnv is the process environment with the two demo routes forced, since
// the printed commands depend on their hosts and seeded upstreams, and with
// demo-friendly defaults for settings the caller left unset.
func demoEnv(environ map[string]string, ups *upstreams) map[string]string {
	e := maps.Clone(environ)
	e["DOCKERHUB_ACCESS_DOMAIN"] = "localhost"
	e["DOCKERHUB_UPSTREAM"] = ups.dockerHub.URL
	e["DOCKERHUB_AUTH_HOSTS"] = ups.issuer.Host
	e["K8S_ACCESS_DOMAIN"] = "127.0.0.1"
	e["K8S_UPSTREAM"] = ups.k8s.URL
	defaults := map[string]string{
		"RELAY_LISTEN":         ":8080",
		"RELAY_ADMIN_LISTEN":   ":9090",
		"RELAY_LOG_FORMAT":     "text",
		"RELAY_SHUTDOWN_GRACE": "5s", // Ctrl-C should not wait the production 30 s
		"RELAY_SHUTDOWN_DELAY": "0s", // no load balancer to wait for
	}
	for k, v := range defaults {
		if e[k] == "" {
			e[k] = v
		}
	}
	return e
}

func port(ln net.Listener) int {
	return ln.Addr().(*net.TCPAddr).Port
}
