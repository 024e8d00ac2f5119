package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Credentials of the demo account on the Docker Hub stand-in; anonymous
// callers get nothing under private/.
const (
	demoUser     = "demo"
	demoPassword = "demo"
)

// upstreams are the registries the relay fronts in the demo: in-memory
// registries from go-containerregistry, one behind token auth.
type upstreams struct {
	issuer    *tokenIssuer
	dockerHub *server  // token auth, like registry-1.docker.io
	k8s       *server  // anonymous, like registry.k8s.io
	closers   []func() // in start order; Close runs them backwards
}

// startUpstreams starts the issuer and both registries and seeds them.
func startUpstreams(ctx context.Context) (*upstreams, error) {
	u := &upstreams{}
	if err := u.start(ctx); err != nil {
		u.Close()
		return nil, err
	}
	return u, nil
}

func (u *upstreams) start(ctx context.Context) error {
	var err error
	u.issuer, err = startTokenIssuer(map[string]string{demoUser: demoPassword}, []string{"private/*"})
	if err != nil {
		return fmt.Errorf("starting token issuer: %w", err)
	}
	u.closers = append(u.closers, u.issuer.Close)

	hub, k8s := newRegistry(), newRegistry()
	for _, s := range []struct {
		reg       http.Handler
		repo, tag string
	}{
		{hub, "library/hello", "latest"},
		{hub, "private/hello", "latest"},
		{k8s, "pause", "3.10"},
	} {
		if err := seed(ctx, s.reg, s.repo, s.tag); err != nil {
			return err
		}
	}

	if u.dockerHub, err = serve(u.issuer.protect(hub)); err != nil {
		return fmt.Errorf("starting Docker Hub stand-in: %w", err)
	}
	u.closers = append(u.closers, u.dockerHub.Close)
	if u.k8s, err = serve(k8s); err != nil {
		return fmt.Errorf("starting registry.k8s.io stand-in: %w", err)
	}
	u.closers = append(u.closers, u.k8s.Close)
	return nil
}

// newRegistry is an in-memory registry that keeps its request log to
// itself; the relay's access log already shows every request.
func newRegistry() http.Handler {
	return registry.New(registry.Logger(log.New(io.Discard, "", 0)))
}

// Close stops the registries before the issuer.
func (u *upstreams) Close() {
	for _, closeFn := range slices.Backward(u.closers) {
		closeFn()
	}
	u.closers = nil
}

// server serves one upstream on a free loopback port.
type server struct {
	URL  string // http://127.0.0.1:PORT
	Host string // 127.0.0.1:PORT
	srv  *http.Server
}

func serve(h http.Handler) (*server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &server{
		URL:  "http://" + ln.Addr().String(),
		Host: ln.Addr().String(),
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the server at once: the relay has drained before it runs.
func (s *server) Close() { _ = s.srv.Close() }
