//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// world is the running system under test: a token-auth registry (Docker
// Hub's stand-in, also served by the ghcr route), an anonymous one (the k8s
// route) and the relay binary in front of both.
type world struct {
	issuer  *relaytest.TokenIssuer
	authURL string
	anonURL string
	relay   *relayProcess
	// guarded is a second relay in front of the same upstreams that
	// requires relay accounts and pulls with its own upstream account.
	guarded *relayProcess
	img     seeded
}

// seeded records what was pushed, to compare with what clients pull.
type seeded struct {
	list, index, big, app, private, pause v1.Hash
	bigLayer, bigDiffID                   v1.Hash
}

func (w *world) hosts() []string {
	return []string{w.relay.host(hubDomain), w.relay.host(ghcrDomain), w.relay.host(k8sDomain),
		w.guarded.host(hubDomain), w.guarded.host(k8sDomain)}
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ensureHosts(t)
	w := &world{}
	var err error
	w.issuer, err = relaytest.StartTokenIssuer(relaytest.IssuerOptions{
		Users: map[string]string{upstreamUser.user: upstreamUser.password}, PrivateRepos: []string{"private/*"},
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.issuer.Close)
	w.authURL = startRegistry(t, w.issuer)
	w.anonURL = startRegistry(t, nil)
	w.seed(t)
	w.relay = startRelay(t, map[string]string{
		"RELAY_BASE_DOMAIN":    "relay-e2e.test",
		"DOCKERHUB_UPSTREAM":   w.authURL,
		"GHCR_UPSTREAM":        w.authURL,
		"K8S_UPSTREAM":         w.anonURL,
		"QUAY_UPSTREAM":        "http://" + freeAddr(t), // nothing listens: the upstream is down
		"MIRROR_ACCESS_DOMAIN": mirrorDomain,
		"DOCKERHUB_AUTH_HOSTS": w.issuer.Host,
		"GHCR_AUTH_HOSTS":      w.issuer.Host,
	})
	w.guarded = startRelay(t, map[string]string{
		"RELAY_BASE_DOMAIN":    "relay-e2e.test",
		"DOCKERHUB_UPSTREAM":   w.authURL,
		"K8S_UPSTREAM":         w.anonURL,
		"RELAY_HTPASSWD_FILE":  htpasswd(t, relayUser),
		"DOCKERHUB_USERNAME":   upstreamUser.user,
		"DOCKERHUB_PASSWORD":   upstreamUser.password,
		"DOCKERHUB_AUTH_HOSTS": w.issuer.Host,
	})
	return w
}

func (w *world) seed(t *testing.T) {
	t.Helper()
	start := time.Now()
	ctx := context.Background()
	auth := relaytest.External(w.authURL, w.issuer)
	anon := relaytest.External(w.anonURL, nil)
	must := func(h v1.Hash, err error) v1.Hash {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	list, err := relaytest.NewRandomIndex(types.DockerManifestList, 1, 8<<10)
	must(v1.Hash{}, err)
	w.img.list = must(auth.PushIndex(ctx, "library/alpine:latest", list))
	w.img.pause = must(anon.PushIndex(ctx, "pause:3.10", list))
	oci, err := relaytest.NewRandomIndex(types.OCIImageIndex, 1, 8<<10)
	must(v1.Hash{}, err)
	w.img.index = must(auth.PushIndex(ctx, "library/ociindex:latest", oci))
	big, err := relaytest.NewRandomImage(1, 256<<20)
	must(v1.Hash{}, err)
	w.img.big = must(auth.PushImage(ctx, "library/big:latest", big))
	layers, err := big.Layers()
	must(v1.Hash{}, err)
	w.img.bigLayer = must(layers[0].Digest())
	w.img.bigDiffID = must(layers[0].DiffID())
	app, err := relaytest.NewRandomImage(2, 16<<10)
	must(v1.Hash{}, err)
	w.img.app = must(auth.PushImage(ctx, "someuser/app:1.0", app))
	secret, err := relaytest.NewRandomImage(1, 4<<10)
	must(v1.Hash{}, err)
	w.img.private = must(auth.PushImage(ctx, "private/secret:1.0", secret))
	t.Logf("seeded upstreams in %s", time.Since(start).Round(time.Millisecond))
}

// pullCase is one image reference a client pulls through the relay.
type pullCase struct {
	name string
	ref  string
	want v1.Hash
	big  bool
	auth authMode
}

type authMode int

const (
	anonymous authMode = iota
	withLogin
	deniedWithoutLogin
)

func (w *world) cases() []pullCase {
	hub, ghcr, k8s := w.relay.host(hubDomain), w.relay.host(ghcrDomain), w.relay.host(k8sDomain)
	return []pullCase{
		{name: "manifest list, short name", ref: hub + "/alpine:latest", want: w.img.list},
		{name: "manifest list, library/", ref: hub + "/library/alpine:latest", want: w.img.list},
		{name: "manifest list, ghcr route", ref: ghcr + "/library/alpine:latest", want: w.img.list},
		{name: "manifest list, k8s route (anonymous)", ref: k8s + "/pause:3.10", want: w.img.pause},
		{name: "OCI index, short name", ref: hub + "/ociindex:latest", want: w.img.index},
		{name: "OCI index, library/", ref: hub + "/library/ociindex:latest", want: w.img.index},
		{name: "OCI index, ghcr route", ref: ghcr + "/library/ociindex:latest", want: w.img.index},
		{name: "256 MiB layer, short name", ref: hub + "/big:latest", want: w.img.big, big: true},
		{name: "256 MiB layer, library/", ref: hub + "/library/big:latest", want: w.img.big, big: true},
		{name: "256 MiB layer, ghcr route", ref: ghcr + "/library/big:latest", want: w.img.big, big: true},
		{name: "user repo someuser/app", ref: hub + "/someuser/app:1.0", want: w.img.app},
		{name: "user repo, ghcr route", ref: ghcr + "/someuser/app:1.0", want: w.img.app},
		{name: "private, no credentials", ref: hub + "/private/secret:1.0", auth: deniedWithoutLogin},
		{name: "private, login", ref: hub + "/private/secret:1.0", want: w.img.private, auth: withLogin},
		{name: "private, login, ghcr route", ref: ghcr + "/private/secret:1.0", want: w.img.private, auth: withLogin},
	}
}

func TestE2E(t *testing.T) {
	w := newWorld(t)
	t.Run("negative", func(t *testing.T) { testNegative(t, w) })
	for _, c := range []client{&crane{}, &regctl{}, &skopeo{}, &podman{}, &ctr{}, &docker{}} {
		t.Run(c.name(), func(t *testing.T) {
			testClient(t, w, c)
			testRelayAccounts(t, w, c)
			if m, ok := c.(mirrorClient); ok {
				testMirror(t, w, c.name(), m)
			}
		})
	}
}

func testClient(t *testing.T, w *world, c client) {
	if reason := c.setup(t, w); reason != "" {
		record(c.name(), "(all cases)", "SKIP", reason)
		t.Skip(reason)
	}
	for _, pc := range w.cases() {
		t.Run(pc.name, func(t *testing.T) {
			start := time.Now()
			detail, err := pullOnce(t, w, c, pc)
			if err != nil {
				record(c.name(), pc.name, "FAIL", err.Error())
				t.Error(err)
				return
			}
			record(c.name(), pc.name, "PASS", detail+" "+time.Since(start).Round(time.Millisecond).String())
		})
	}
}

func pullOnce(t *testing.T, w *world, c client, pc pullCase) (string, error) {
	ctx := context.Background()
	host, _, _ := strings.Cut(pc.ref, "/")
	if pc.auth == withLogin {
		if out, err := c.login(ctx, host, upstreamUser); err != nil {
			return "", failure("login", err, out)
		}
		defer c.logout(ctx, host)
	}
	defer c.forget(ctx, pc.ref)
	res, out, err := c.pull(ctx, t, pc.ref)
	if pc.auth == deniedWithoutLogin {
		return deniedAsExpected(err, out)
	}
	if err != nil {
		return "", failure("pull", err, out)
	}
	if res.digest != pc.want.String() {
		return "", failure("digest", nil, "pulled "+res.digest+", pushed "+pc.want.String())
	}
	if pc.big && !contains(res.layers, w.img.bigLayer.String(), w.img.bigDiffID.String()) {
		return "", failure("big layer", nil, "neither "+w.img.bigLayer.String()+" nor its diff ID among "+strings.Join(res.layers, " "))
	}
	return "digest " + res.digest[:19], nil
}

// deniedAsExpected accepts a failed pull that the client blames on
// authentication, and rejects success, crashes and server errors.
func deniedAsExpected(err error, out string) (string, error) {
	if err == nil {
		return "", failure("private pull without credentials succeeded", nil, out)
	}
	low := strings.ToLower(out)
	for _, bad := range []string{"panic", " 500", " 502", " 503", "internal server error", "bad gateway"} {
		if strings.Contains(low, bad) {
			return "", failure("denied pull looked like a server error", err, out)
		}
	}
	for _, ok := range []string{"unauthorized", "authentication required", "denied", "401", "insufficient_scope", "authorization"} {
		if strings.Contains(low, ok) {
			return "refused: " + ok, nil
		}
	}
	return "", failure("denied pull did not mention authentication", err, out)
}

func contains(list []string, any ...string) bool {
	for _, l := range list {
		for _, a := range any {
			if l == a {
				return true
			}
		}
	}
	return false
}

type caseError struct{ msg string }

func (e *caseError) Error() string { return e.msg }

func failure(what string, err error, out string) error {
	msg := what
	if err != nil {
		msg += ": " + err.Error()
	}
	if out = strings.TrimSpace(out); out != "" {
		msg += ": " + strings.ReplaceAll(string(tail([]byte(out), 600)), "\n", " | ")
	}
	return &caseError{msg}
}
