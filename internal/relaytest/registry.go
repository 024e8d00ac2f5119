package relaytest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	v2 "github.com/distribution/distribution/v3/registry/api/v2"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/gorilla/mux"
	"github.com/sirupsen/logrus"

	// Registered by init side effects: token auth and the inmemory driver.
	_ "github.com/distribution/distribution/v3/registry/auth/token"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

// Registry is a distribution/v3 registry served in-process on 127.0.0.1.
type Registry struct {
	URL  string // http://127.0.0.1:PORT
	Host string // 127.0.0.1:PORT

	app       *handlers.App
	auth      *TokenIssuer
	srv       *httptest.Server
	closeOnce sync.Once
}

// RegistryOptions configures NewRegistry and StartRegistry.
type RegistryOptions struct {
	// Auth enables distribution's token auth against this issuer; nil means
	// anyone may pull and push.
	Auth *TokenIssuer
	// Wrap, if set, is middleware around the registry handler so tests can
	// inject upstream quirks (redirects to a fake CDN, HTML errors...).
	Wrap func(next http.Handler) http.Handler
}

var quietOnce sync.Once

// quietDistribution is process-wide because both knobs are globals:
// distribution logs through the logrus standard logger and the OTel SDK
// reads its environment. t.Setenv is not an option as it forbids t.Parallel.
func quietDistribution() {
	quietOnce.Do(func() {
		os.Setenv("OTEL_SDK_DISABLED", "true")
		os.Setenv("OTEL_TRACES_EXPORTER", "none")
		logrus.SetLevel(logrus.ErrorLevel)
		logrus.SetOutput(io.Discard)
	})
}

// NewRegistry starts a registry with in-memory storage; it is closed via t.Cleanup.
func NewRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	reg, err := StartRegistry(opts)
	if err != nil {
		t.Fatalf("relaytest: %v", err)
	}
	t.Cleanup(reg.Close)
	return reg
}

// StartRegistry is NewRegistry for programs without a testing.TB, such as
// the conformance harness. The caller must call Close.
func StartRegistry(opts RegistryOptions) (*Registry, error) {
	quietDistribution()
	app, err := newApp(opts.Auth)
	if err != nil {
		return nil, err
	}
	var h http.Handler = app
	if opts.Wrap != nil {
		h = opts.Wrap(h)
	}
	srv := httptest.NewServer(h)
	return &Registry{
		URL:  srv.URL,
		Host: strings.TrimPrefix(srv.URL, "http://"),
		app:  app,
		auth: opts.Auth,
		srv:  srv,
	}, nil
}

// newApp turns NewApp's panic on bad configuration into an error.
func newApp(issuer *TokenIssuer) (app *handlers.App, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("distribution NewApp: %v", p)
		}
	}()
	return handlers.NewApp(context.Background(), registryConfig(issuer)), nil
}

// External describes a registry running elsewhere (a registry binary in
// end-to-end tests) so the push helpers can seed it, as the admin of auth
// when it is not nil. Handler and Close are not available on it.
func External(url string, auth *TokenIssuer) *Registry {
	return &Registry{URL: url, Host: strings.TrimPrefix(url, "http://"), auth: auth}
}

// Close stops the server, waiting for requests in flight, and shuts the
// registry down; it may be called more than once. One goroutine stays
// behind, see IgnoreRegistryGoroutines.
func (r *Registry) Close() {
	r.closeOnce.Do(func() {
		if r.srv == nil {
			return // External
		}
		r.srv.Close()
		_ = r.app.Shutdown()
	})
}

// Handler returns the distribution handler without Wrap and without auth, so
// a fake CDN can fetch blobs directly. On a token-auth registry each request
// is handed a freshly minted token with full access to the repository it
// names (and to a cross-mount source), since the handler itself cannot be
// configured to skip auth.
func (r *Registry) Handler() http.Handler {
	if r.auth == nil {
		return r.app
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		token, err := r.auth.bypassToken(requestRepos(req))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+token)
		r.app.ServeHTTP(w, req)
	})
}

// requestRepos names the repositories a request touches, using
// distribution's own router so names containing "blobs" or "manifests"
// segments parse the same way the registry parses them.
func requestRepos(req *http.Request) []string {
	var match mux.RouteMatch
	if !v2.Router().Match(req, &match) || match.Vars["name"] == "" {
		return nil
	}
	repos := []string{match.Vars["name"]}
	if from := req.URL.Query().Get("from"); from != "" {
		repos = append(repos, from)
	}
	return repos
}

// registryConfig is built as a struct rather than through configuration.Parse
// so REGISTRY_* variables in the environment cannot change it.
func registryConfig(issuer *TokenIssuer) *configuration.Configuration {
	config := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory": configuration.Parameters{},
			"delete":   configuration.Parameters{"enabled": true},
			// The purger is a goroutine with a sleep loop that Shutdown cannot stop.
			"maintenance": configuration.Parameters{
				"uploadpurging": map[any]any{"enabled": false},
			},
		},
	}
	config.HTTP.Secret = randomHex(32) // else NewApp logs a warning and makes one up
	config.Log.AccessLog.Disabled = true
	if issuer != nil {
		config.Auth = configuration.Auth{"token": configuration.Parameters{
			"realm":          issuer.Realm,
			"service":        issuer.Service,
			"issuer":         issuer.Issuer,
			"rootcertbundle": issuer.bundlePath,
		}}
	}
	return config
}
