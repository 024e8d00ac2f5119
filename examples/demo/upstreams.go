package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// Credentials of the demo account on the Docker Hub stand-in; anonymous
// callers get nothing under private/.
const (
	demoUser     = "demo"
	demoPassword = "demo"
)

// upstreams are the registries the relay fronts in the demo.
type upstreams struct {
	issuer    *relaytest.TokenIssuer
	dockerHub *relaytest.Registry // token auth, like registry-1.docker.io
	k8s       *relaytest.Registry // anonymous, like registry.k8s.io
	closers   []func()            // in start order; Close runs them backwards
}

// startUpstreams starts the issuer and both registries and seeds them.
func startUpstreams(ctx context.Context) (*upstreams, error) {
	u := &upstreams{}
	if err := u.start(); err != nil {
		u.Close()
		return nil, err
	}
	if err := u.seed(ctx); err != nil {
		u.Close()
		return nil, err
	}
	return u, nil
}

func (u *upstreams) start() error {
	var err error
	u.issuer, err = relaytest.StartTokenIssuer(relaytest.IssuerOptions{
		Users:        map[string]string{demoUser: demoPassword},
		PrivateRepos: []string{"private/*"},
	}, "")
	if err != nil {
		return fmt.Errorf("starting token issuer: %w", err)
	}
	u.closers = append(u.closers, u.issuer.Close)
	if u.dockerHub, err = relaytest.StartRegistry(relaytest.RegistryOptions{Auth: u.issuer}); err != nil {
		return fmt.Errorf("starting Docker Hub stand-in: %w", err)
	}
	u.closers = append(u.closers, u.dockerHub.Close)
	if u.k8s, err = relaytest.StartRegistry(relaytest.RegistryOptions{}); err != nil {
		return fmt.Errorf("starting registry.k8s.io stand-in: %w", err)
	}
	u.closers = append(u.closers, u.k8s.Close)
	return nil
}

// seed pushes what the printed commands pull. Each image is a Docker
// manifest list for linux/amd64 and linux/arm64 with one tiny gzip tar
// layer per platform, so `docker pull` works on either kind of host.
func (u *upstreams) seed(ctx context.Context) error {
	for _, s := range []struct {
		reg *relaytest.Registry
		ref string
	}{
		{u.dockerHub, "library/hello:latest"},
		{u.dockerHub, "private/hello:latest"},
		{u.k8s, "pause:3.10"},
	} {
		idx, err := relaytest.NewRandomIndex(types.DockerManifestList, 1, 1024)
		if err != nil {
			return fmt.Errorf("building %s: %w", s.ref, err)
		}
		if _, err := s.reg.PushIndex(ctx, s.ref, idx); err != nil {
			return fmt.Errorf("seeding %s: %w", s.ref, err)
		}
	}
	return nil
}

// Close stops the registries before the issuer they verify tokens with.
func (u *upstreams) Close() {
	for _, closeFn := range slices.Backward(u.closers) {
		closeFn()
	}
	u.closers = nil
}
