package relay

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
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

// policy is a route's repository and client lists. Without
// Options.Policies every route is unrestricted; with them, a route they
// do not name is refused everything, so that a route added without its
// policy fails closed.
func (rl *Relay) policy(route *registry.Route) access.RoutePolicy {
	if rl.opts.Policies == nil {
		return access.RoutePolicy{}
	}
	if p, ok := rl.opts.Policies[route.Name]; ok {
		return p
	}
	return access.RoutePolicy{Closed: true}
}

// refusal is an answer the relay gives instead of serving a request: the
// OCI error, the reason it is counted under (a small fixed set) and a
// header the client needs (Retry-After, WWW-Authenticate). The verdicts
// below return one instead of writing it, so that a request's path reads
// as resolve, decide, act.
type refusal struct {
	err           *oci.Error
	reason        string // "" counts nothing
	header, value string
}

// refuse writes r's answer and counts it.
func (rl *Relay) refuse(w http.ResponseWriter, r *http.Request, x *exchange, f *refusal) {
	route := "none"
	if x.route != nil {
		route = x.route.Name
	}
	if f.reason != "" {
		rl.opts.Metrics.Denied(route, f.reason)
	}
	if f.header != "" {
		w.Header().Set(f.header, f.value)
	}
	f.err.ServeHTTP(w, r)
}

func tooMany(reason string, retry time.Duration) *refusal {
	return &refusal{reason: reason, header: "Retry-After", value: strconv.Itoa(max(1, int(retry.Seconds()))),
		err: oci.Err(oci.CodeTooManyRequests, "too many requests from your address; retry later")}
}

// guard applies the per-client request rate to every request, and the
// route's client IP list where the host names the route (on the mirror
// host, the route is known once the request is resolved: see admit).
func (rl *Relay) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		x := exchangeFrom(r.Context())
		x.clientIP = access.ClientIP(r, rl.opts.TrustedProxies)
		if x.fromPeer = rl.fromPeer(r); x.fromPeer {
			next.ServeHTTP(w, r) // the replica that forwarded it decided
			return
		}
		f := rl.rateVerdict(x)
		if f == nil && x.mirror == nil && x.route != nil {
			f = rl.clientVerdict(x)
		}
		if f != nil {
			rl.refuse(w, r, x, f)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (rl *Relay) rateVerdict(x *exchange) *refusal {
	if a := rl.opts.Access; a != nil && a.Limiter != nil {
		if ok, wait := a.Limiter.Allow(x.clientIP); !ok {
			return tooMany(deniedRate, wait)
		}
	}
	return nil
}

// clientVerdict applies the route's ALLOW_CIDRS.
func (rl *Relay) clientVerdict(x *exchange) *refusal {
	if rl.policy(x.route).PermitsClient(x.clientIP) {
		return nil
	}
	return &refusal{reason: deniedClientIP, err: oci.Err(oci.CodeDenied, "your address may not use this registry")}
}

// repoVerdict applies the route's ALLOW_REPOS and DENY_REPOS to the
// upstream's repository name.
func (rl *Relay) repoVerdict(x *exchange) *refusal {
	if x.upstreamRepo == "" || rl.policy(x.route).PermitsRepo(x.upstreamRepo) {
		return nil
	}
	return &refusal{reason: deniedRepository,
		err: oci.Err(oci.CodeDenied, "repository "+strconv.Quote(x.path.Name)+" is not served by this relay")}
}

// admit decides whether a resolved registry request may go ahead: the
// mirror host's client list (its route is known only now), the route's
// repository lists, and relay-level client authentication.
func (rl *Relay) admit(r *http.Request, x *exchange) *refusal {
	if x.fromPeer {
		return rl.repoVerdict(x) // the forwarding replica admitted the client
	}
	if x.mirror != nil {
		if f := rl.clientVerdict(x); f != nil {
			return f
		}
	}
	if f := rl.repoVerdict(x); f != nil {
		return f
	}
	return rl.authenticateClient(r, x)
}

// startTransfer counts a blob GET against the client's concurrent-transfer
// limit; release must be called when it ends.
func (rl *Relay) startTransfer(r *http.Request, x *exchange) (release func(), f *refusal) {
	a := rl.opts.Access
	if a == nil || a.Limiter == nil || x.kind != oci.KindBlob || r.Method != http.MethodGet || x.fromPeer {
		return func() {}, nil // a peer's forwarded fill: the client's slot is held there
	}
	release, ok := a.Limiter.StartTransfer(x.clientIP)
	if !ok {
		return nil, tooMany(deniedTransfers, time.Second)
	}
	return release, nil
}

// authenticateClient enforces relay-level client authentication on a
// registry request: a valid relay token is swapped for the upstream token
// it wraps; anything else is refused with the relay's own challenge.
func (rl *Relay) authenticateClient(r *http.Request, x *exchange) *refusal {
	a := rl.opts.Access
	if a == nil || a.Users == nil {
		return nil
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
			return nil
		}
	}
	// The realm names the route ("<route>." is a realm id of that route
	// with no known realm), which the mirror host needs to pick the
	// upstream of the token request.
	realm := x.scheme + "://" + x.host + "/token/" + x.route.Name + "."
	return &refusal{reason: deniedAuthenticated, header: "WWW-Authenticate", value: relayChallenge(realm, x.prefix, x.path.Name),
		err: oci.Err(oci.CodeUnauthorized, "authentication required")}
}

// relayChallenge is the relay's own Bearer challenge, for a pull of the
// repository prefix+name (no scope for the API root, where name is
// empty), rendered by auth.Challenge so that every value is quoted.
func relayChallenge(realm, prefix, name string) string {
	c := auth.Challenge{Scheme: "Bearer", Params: []auth.Param{{Key: "realm", Value: realm}, {Key: "service", Value: auth.RelayService}}}
	if name != "" {
		c.Set("scope", "repository:"+prefix+name+":pull")
	}
	return c.String()
}

// tokenIssuer checks a token request's relay credentials and returns what
// wraps the upstream token, or the refusal.
func (rl *Relay) tokenIssuer(r *http.Request, tr *auth.TokenRequest, route string) (func(string, time.Duration) (string, time.Duration), *refusal) {
	a := rl.opts.Access
	user, password, ok := tr.Credentials(r)
	if !ok || !a.Users.Users().Verify(user, password) {
		return nil, &refusal{header: "WWW-Authenticate", value: `Basic realm="registry-relay"`,
			err: oci.Err(oci.CodeUnauthorized, "log in to the relay (docker login) with a relay account")}
	}
	return func(upstream string, ttl time.Duration) (string, time.Duration) {
		ttl = min(ttl, a.TokenTTL)
		return a.Signer.Issue(user, route, upstream, ttl), ttl
	}, nil
}
