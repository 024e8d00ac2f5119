package relaytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Built-in account that every TokenIssuer accepts with push rights on all
// repositories and registry:catalog:*; the push helpers use it.
const (
	AdminUser     = "relaytest-admin"
	AdminPassword = "relaytest-admin-password"
)

// tokenTTL matches the 300 s Docker Hub hands out, so clients exercise the
// same expires_in they see in production.
const tokenTTL = 300 * time.Second

// TokenIssuer is a Docker-style token server (the "realm") on 127.0.0.1 for
// distribution's token auth; see https://distribution.github.io/distribution/spec/auth/token/.
type TokenIssuer struct {
	URL     string // base URL, e.g. http://127.0.0.1:PORT
	Host    string // 127.0.0.1:PORT, for a route's _AUTH_HOSTS
	Realm   string // URL + "/token"
	Service string // audience the registry expects and the service param clients must send
	Issuer  string // iss claim the registry trusts

	signer       *signer
	srv          *httptest.Server
	bundlePath   string // PEM file for the registry's rootcertbundle
	tempDir      string // removed by Close; "" when the caller owns the directory
	users        map[string]string
	privateRepos []string

	mu       sync.Mutex
	requests []TokenRequest
}

// IssuerOptions configures NewTokenIssuer and StartTokenIssuer.
type IssuerOptions struct {
	// Users maps username to password, accepted via HTTP Basic (GET) or an
	// OAuth2 password grant (POST). Every user may pull and push any repository.
	Users map[string]string
	// PrivateRepos lists repositories anonymous callers get no access to;
	// entries are path.Match patterns such as "private/*".
	PrivateRepos []string
}

// TokenRequest is what the issuer received on one call to the realm.
type TokenRequest struct {
	Method           string
	Service          string
	Scopes           []string // one entry per scope, space-separated lists already split
	Username         string   // from Basic auth or the password grant; "" if anonymous
	HadAuthorization bool     // an Authorization header was present
}

// tokenResponse carries both token and access_token because Docker clients
// read the former and OAuth2 clients the latter.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
}

// NewTokenIssuer starts a token server on 127.0.0.1 that is closed via t.Cleanup.
func NewTokenIssuer(t testing.TB, opts IssuerOptions) *TokenIssuer {
	t.Helper()
	ti, err := StartTokenIssuer(opts, t.TempDir())
	if err != nil {
		t.Fatalf("relaytest: %v", err)
	}
	t.Cleanup(ti.Close)
	return ti
}

// StartTokenIssuer is NewTokenIssuer for programs without a testing.TB,
// such as the conformance harness. The registry's root certificate bundle is written
// to dir; an empty dir means a temporary directory that Close removes.
// The caller must call Close.
func StartTokenIssuer(opts IssuerOptions, dir string) (*TokenIssuer, error) {
	s, err := newSigner("relaytest token issuer")
	if err != nil {
		return nil, err
	}
	ti := &TokenIssuer{
		Service:      "relaytest-registry",
		Issuer:       "relaytest-issuer",
		signer:       s,
		users:        maps.Clone(opts.Users),
		privateRepos: slices.Clone(opts.PrivateRepos),
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "relaytest-issuer-"); err != nil {
			return nil, fmt.Errorf("create bundle directory: %w", err)
		}
		ti.tempDir = dir
	}
	ti.bundlePath = filepath.Join(dir, "rootcertbundle.pem")
	if err := os.WriteFile(ti.bundlePath, s.certPEM(), 0o600); err != nil {
		ti.removeTempDir()
		return nil, fmt.Errorf("write root cert bundle: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", ti.serveToken)
	mux.HandleFunc("POST /token", ti.serveToken)
	ti.srv = httptest.NewServer(mux)
	ti.URL = ti.srv.URL
	ti.Host = ti.srv.Listener.Addr().String()
	ti.Realm = ti.srv.URL + "/token"
	return ti, nil
}

// Close stops the token server, waiting for requests in flight, and
// removes the bundle directory if StartTokenIssuer created it; it may be
// called more than once. Registries using the issuer should be closed first.
func (ti *TokenIssuer) Close() {
	ti.srv.Close()
	ti.removeTempDir()
}

func (ti *TokenIssuer) removeTempDir() {
	if ti.tempDir != "" {
		_ = os.RemoveAll(ti.tempDir)
	}
}

// RootCertBundle is the PEM file a registry's token auth must trust
// (distribution's auth.token.rootcertbundle).
func (ti *TokenIssuer) RootCertBundle() string { return ti.bundlePath }

// AdminAuth returns the credentials of the built-in admin account.
func (ti *TokenIssuer) AdminAuth() authn.Authenticator {
	return &authn.Basic{Username: AdminUser, Password: AdminPassword}
}

// Requests returns copies of every request the issuer has received so far.
func (ti *TokenIssuer) Requests() []TokenRequest {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	out := make([]TokenRequest, len(ti.requests))
	for i, req := range ti.requests {
		req.Scopes = slices.Clone(req.Scopes)
		out[i] = req
	}
	return out
}

func (ti *TokenIssuer) record(req TokenRequest) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	ti.requests = append(ti.requests, req)
}

func (ti *TokenIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	req, creds, bad := readTokenRequest(r)
	ti.record(req)
	if bad != nil {
		writeTokenError(w, http.StatusBadRequest, bad.code, bad.message)
		return
	}
	if req.Service != ti.Service {
		writeTokenError(w, http.StatusBadRequest, "DENIED", fmt.Sprintf("unknown service %q", req.Service))
		return
	}
	if creds.present && !ti.authenticate(creds) {
		writeTokenError(w, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
		return
	}

	now := time.Now()
	token, err := ti.signer.sign(ti.claims(creds.username, req.Scopes, now))
	if err != nil {
		writeTokenError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(tokenResponse{
		Token:       token,
		AccessToken: token,
		ExpiresIn:   int(tokenTTL.Seconds()),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	})
}

func (ti *TokenIssuer) authenticate(creds credentials) bool {
	if creds.username == AdminUser {
		return creds.password == AdminPassword
	}
	want, ok := ti.users[creds.username]
	return ok && creds.password == want
}

// claims grants access for user ("" for anonymous) to the requested scopes.
func (ti *TokenIssuer) claims(user string, scopes []string, now time.Time) claimSet {
	return claimSet{
		Issuer:     ti.Issuer,
		Subject:    user,
		Audience:   ti.Service,
		Expiration: now.Add(tokenTTL).Unix(),
		NotBefore:  now.Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      randomHex(16),
		Access:     ti.grants(user, scopes),
	}
}

// bypassToken authorizes Registry.Handler callers, who skip the token flow:
// full access to repos and the catalog. It is not recorded in Requests.
func (ti *TokenIssuer) bypassToken(repos []string) (string, error) {
	claims := ti.claims(AdminUser, nil, time.Now())
	claims.Access = append(claims.Access, resourceActions{Type: "registry", Name: "catalog", Actions: []string{"*"}})
	for _, repo := range repos {
		claims.Access = append(claims.Access, resourceActions{Type: "repository", Name: repo, Actions: []string{"*"}})
	}
	return ti.signer.sign(claims)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return hex.EncodeToString(b)
}

// writeTokenError answers in the distribution error envelope, which is what
// auth.docker.io and most token servers send.
func writeTokenError(w http.ResponseWriter, status int, code, message string) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Errors []apiError `json:"errors"`
	}{Errors: []apiError{{Code: code, Message: message}}})
}
