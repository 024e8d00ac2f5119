package relay

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/oci"
)

// Access is what the relay enforces before any upstream request: rate and
// transfer limits per client IP, and, when Users is set, relay-level client
// authentication.
type Access struct {
	Limiter *access.Limiter
	// Users and Signer enable client authentication: clients log in to
	// the relay, and its token endpoint hands out relay tokens that wrap
	// the upstream's. A token is good only while its user is in Users.
	Users    *access.UserFile
	Signer   *access.Signer
	TokenTTL time.Duration
}

// Denial reasons, a small fixed set used as a metrics label.
const (
	deniedRate          = "rate"
	deniedTransfers     = "transfers"
	deniedClientIP      = "client_ip"
	deniedRepository    = "repository"
	deniedAuthenticated = "unauthenticated"
)

// guard applies the per-client request rate to every request, and the
// route's client IP list where the host names the route.
func (rl *Relay) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := exchangeFrom(r.Context())
		x.clientIP = access.ClientIP(r, rl.opts.TrustedProxies)
		if a := rl.opts.Access; a != nil && a.Limiter != nil {
			if ok, wait := a.Limiter.Allow(x.clientIP); !ok {
				rl.deny(w, r, x, deniedRate, wait)
				return
			}
		}
		if x.route != nil && !rl.clientAllowed(w, r, x) {
			return
		}
		next.ServeHTTP(w, r)
	})
}

// clientAllowed applies the route's ALLOW_CIDRS.
func (rl *Relay) clientAllowed(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	if x.route.Clients.Permits(x.clientIP) {
		return true
	}
	rl.deny(w, r, x, deniedClientIP, 0)
	return false
}

// repoAllowed applies the route's ALLOW_REPOS and DENY_REPOS to the
// upstream's repository name.
func (rl *Relay) repoAllowed(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	if x.upstreamRepo == "" || x.route.Repos.Permits(x.upstreamRepo) {
		return true
	}
	rl.deny(w, r, x, deniedRepository, 0)
	return false
}

// startTransfer counts a blob GET against the client's concurrent-transfer
// limit; release must be called when it ends.
func (rl *Relay) startTransfer(w http.ResponseWriter, r *http.Request, x *exchange) (release func(), ok bool) {
	a := rl.opts.Access
	if a == nil || a.Limiter == nil || x.kind != oci.KindBlob || r.Method != http.MethodGet {
		return func() {}, true
	}
	release, ok = a.Limiter.StartTransfer(x.clientIP)
	if !ok {
		rl.deny(w, r, x, deniedTransfers, time.Second)
	}
	return release, ok
}

func (rl *Relay) deny(w http.ResponseWriter, r *http.Request, x *exchange, reason string, retry time.Duration) {
	route := "none"
	if x.route != nil {
		route = x.route.Name
	}
	rl.opts.Metrics.Denied(route, reason)
	switch reason {
	case deniedRate, deniedTransfers:
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(retry.Seconds()))))
		oci.NewError(http.StatusTooManyRequests, oci.CodeTooManyRequests, "too many requests from your address; retry later").ServeHTTP(w, r)
	case deniedClientIP:
		oci.NewError(http.StatusForbidden, oci.CodeDenied, "your address may not use this registry").ServeHTTP(w, r)
	default:
		oci.NewError(http.StatusForbidden, oci.CodeDenied, "repository "+strconv.Quote(x.path.Name)+" is not served by this relay").ServeHTTP(w, r)
	}
}

// authenticateClient enforces relay-level client authentication on a
// registry request: a valid relay token is swapped for the upstream token
// it wraps; anything else gets the relay's own challenge.
func (rl *Relay) authenticateClient(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	a := rl.opts.Access
	if a == nil || a.Users == nil {
		return true
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		user, upstream, valid := a.Signer.Verify(tok, x.route.Name)
		if valid && a.Users.Users().Has(user) {
			x.clientUser = user
			if upstream != "" {
				r.Header.Set("Authorization", "Bearer "+upstream)
			} else {
				r.Header.Del("Authorization")
			}
			return true
		}
	}
	// The realm names the route ("<route>." is a realm id of that route
	// with no known realm), which the mirror host needs to pick the
	// upstream of the token request.
	challenge := `Bearer realm="` + x.scheme + "://" + x.host + "/token/" + x.route.Name + `.",service="` + auth.RelayService + `"`
	if x.path.Name != "" {
		challenge += `,scope="repository:` + x.prefix + x.path.Name + `:pull"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	rl.opts.Metrics.Denied(x.route.Name, deniedAuthenticated)
	oci.NewError(http.StatusUnauthorized, oci.CodeUnauthorized, "authentication required").ServeHTTP(w, r)
	return false
}

// tokenIssuer checks a token request's relay credentials and returns what
// wraps the upstream token, or answers 401 itself.
func (rl *Relay) tokenIssuer(w http.ResponseWriter, r *http.Request, tr *auth.TokenRequest, route string) (func(string, time.Duration) (string, time.Duration), bool) {
	a := rl.opts.Access
	user, password, ok := tr.Credentials(r)
	if !ok || !a.Users.Users().Verify(user, password) {
		w.Header().Set("WWW-Authenticate", `Basic realm="registry-relay"`)
		oci.NewError(http.StatusUnauthorized, oci.CodeUnauthorized, "log in to the relay (docker login) with a relay account").ServeHTTP(w, r)
		return nil, false
	}
	return func(upstream string, ttl time.Duration) (string, time.Duration) {
		ttl = min(ttl, a.TokenTTL)
		return a.Signer.Issue(user, route, upstream, ttl), ttl
	}, true
}
