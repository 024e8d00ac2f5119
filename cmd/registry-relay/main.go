// Command registry-relay serves public container registries under your own
// domains. Configuration comes from the environment; see README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/caarlos0/env/v11"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
)

func main() {
	cfg, err := config.Load(env.ToMap(os.Environ()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry-relay:", err)
		os.Exit(2)
	}
	a, err := app.New(cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "registry-relay:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, os.Interrupt)
	go func() {
		if sig := <-sigs; sig == os.Interrupt {
			cancel(app.ErrInterrupted)
			return
		}
		cancel(nil)
	}()
	if err := a.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "registry-relay:", err)
		os.Exit(1)
	}
}
