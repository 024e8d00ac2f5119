// Package upstreamauth is the client side of registry token auth, for
// requests the relay makes on its own behalf: a RoundTripper that answers
// a registry's Bearer challenge with an anonymous token. The relay's token
// endpoint, the server side, is package auth.
package upstreamauth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/httpbody"
	"github.com/registry-relay/registry-relay/internal/lru"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// Bearer is an http.RoundTripper that performs the registry token flow
// itself (a fallback upstream, which the client never authenticated
// against): on a 401 with a Bearer challenge it fetches an anonymous
// token from the challenge's realm and retries once. Tokens are cached
// per registry and repository until shortly before they expire.
type Bearer struct {
	// Now is the clock token lifetimes run on; nil means time.Now.
	Now func() time.Time

	next      http.RoundTripper
	authHosts func(registry *url.URL) []string
	tokens    *lru.Cache[cachedToken]
}

var _ http.RoundTripper = (*Bearer)(nil)

type cachedToken struct {
	token string
	life  time.Duration // how long after it was asked for it is used
}

const (
	// maxTokens bounds the cache; the least recently used go first.
	maxTokens = 1024
	// maxTokenAge caps how long a token is reused, whatever lifetime
	// its realm names.
	maxTokenAge = time.Hour
)

// New returns a Bearer that sends registry and token requests with next.
// A realm must be on the origin of the registry that challenged, or at
// one of the hosts authHosts returns for that registry ("host" or
// "host:port", as registry.Route.AuthHosts); authHosts may be nil.
func New(next http.RoundTripper, authHosts func(registry *url.URL) []string) *Bearer {
	return &Bearer{next: next, authHosts: authHosts, tokens: lru.New[cachedToken](maxTokens)}
}

// RoundTrip sends req, answering one Bearer challenge. req must have no
// body (GET/HEAD), so it can be sent twice. A 401 without a usable Bearer
// challenge is the registry's answer and is returned as it is.
func (b *Bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.URL.Host + " " + repositoryOf(req.URL.Path)
	if tok, ok := b.cached(key); ok {
		req = withToken(req, tok)
	}
	resp, err := b.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenge, ok := bearerChallenge(resp.Header.Values("WWW-Authenticate"))
	if !ok {
		return resp, nil
	}
	httpbody.Drain(resp.Body)
	asked := lru.Now(b.Now)
	tok, ttl, err := b.fetch(req, challenge)
	if err != nil {
		return nil, fmt.Errorf("token for %s: %w", req.URL.Host, err)
	}
	b.store(key, tok, ttl, asked)
	return b.next.RoundTrip(withToken(req, tok))
}

// repositoryOf cuts "/v2/<name>/<endpoint>/<reference>" to its name part,
// since a token is granted per repository.
func repositoryOf(path string) string {
	for range 2 {
		if i := strings.LastIndex(path, "/"); i > 0 {
			path = path[:i]
		}
	}
	return path
}

func withToken(req *http.Request, tok string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func bearerChallenge(values []string) (auth.Challenge, bool) {
	for _, v := range values {
		cs, err := auth.ParseChallenges(v)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if strings.EqualFold(c.Scheme, "Bearer") && c.Get("realm") != "" {
				return c, true
			}
		}
	}
	return auth.Challenge{}, false
}

// fetch asks the challenge's realm for an anonymous token.
func (b *Bearer) fetch(req *http.Request, c auth.Challenge) (string, time.Duration, error) {
	realm, err := b.checkRealm(req.URL, c.Get("realm"))
	if err != nil {
		return "", 0, err
	}
	q := realm.Query()
	if s := c.Get("service"); s != "" {
		q.Set("service", s)
	}
	for _, s := range strings.Fields(c.Get("scope")) {
		q.Add("scope", s)
	}
	realm.RawQuery = q.Encode()
	treq, err := http.NewRequestWithContext(req.Context(), http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", 0, err
	}
	resp, err := b.next.RoundTrip(treq)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("token service answered %d", resp.StatusCode)
	}
	body, err := httpbody.Read(resp.Body, auth.MaxTokenBody)
	if err != nil {
		return "", 0, fmt.Errorf("token response: %w", err)
	}
	return auth.ParseToken(body)
}

// checkRealm accepts a realm only where the registry's word may send the
// relay: an http(s) URL without userinfo, no plain http for an https
// registry, on the registry's own origin or an allowed auth host.
func (b *Bearer) checkRealm(reg *url.URL, realm string) (*url.URL, error) {
	u, err := url.Parse(realm)
	switch {
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Hostname() == "":
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", auth.ErrRealmRefused, realm)
	case u.User != nil:
		return nil, fmt.Errorf("%w: %q carries userinfo", auth.ErrRealmRefused, realm)
	case reg.Scheme == "https" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: %q would downgrade https registry %s to plain http", auth.ErrRealmRefused, realm, reg.Host)
	case !registry.SameOrigin(u, reg) && !b.allowedHost(reg, u):
		return nil, fmt.Errorf("%w: host %q is neither registry %s nor one of its auth hosts", auth.ErrRealmRefused, u.Host, reg.Host)
	}
	u.Fragment = ""
	return u, nil
}

func (b *Bearer) allowedHost(reg, realm *url.URL) bool {
	if b.authHosts == nil {
		return false
	}
	for _, p := range b.authHosts(reg) {
		if registry.HostMatches(p, realm) {
			return true
		}
	}
	return false
}

func (b *Bearer) cached(key string) (string, bool) {
	now := lru.Now(b.Now)
	t, at, ok := b.tokens.Get(key, maxTokenAge, now)
	if !ok || now.Sub(at) >= t.life {
		return "", false
	}
	return t.token, true
}

// store keeps a token for its lifetime, counted from when it was asked
// for, less a tenth so that it does not expire in flight.
func (b *Bearer) store(key, tok string, ttl time.Duration, asked time.Time) {
	if life := ttl - ttl/10; life > 0 {
		b.tokens.Put(key, cachedToken{token: tok, life: life}, asked)
	}
}
