package auth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/registry-relay/registry-relay/internal/httpbody"
)

// Bearer is an http.RoundTripper that performs the registry token flow
// itself, for requests the relay makes on its own behalf (a fallback
// upstream, which the client never authenticated against): on a 401 with a
// Bearer challenge it fetches an anonymous token from the challenge's realm
// and retries once. Tokens are cached until shortly before they expire.
type Bearer struct {
	// Next carries both the registry and the token requests.
	Next http.RoundTripper

	mu    sync.Mutex
	cache map[string]cachedToken
}

var _ http.RoundTripper = (*Bearer)(nil)

type cachedToken struct {
	token   string
	expires time.Time
}

// maxCachedTokens bounds the cache; it is emptied when full.
const maxCachedTokens = 1024

// RoundTrip sends req, answering one Bearer challenge. req must have no
// body (GET/HEAD), so it can be sent twice.
func (b *Bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	key := req.URL.Host + " " + repositoryOf(req.URL.Path)
	if tok, ok := b.cached(key); ok {
		req = withToken(req, tok)
	}
	resp, err := b.Next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	challenge, ok := bearerChallenge(resp.Header.Values("WWW-Authenticate"))
	if !ok {
		return resp, nil
	}
	httpbody.Drain(resp.Body)
	tok, ttl, err := b.fetch(req, challenge)
	if err != nil {
		return nil, fmt.Errorf("token for %s: %w", req.URL.Host, err)
	}
	b.store(key, tok, ttl)
	return b.Next.RoundTrip(withToken(req, tok))
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

func bearerChallenge(values []string) (Challenge, bool) {
	for _, v := range values {
		cs, err := ParseChallenges(v)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if strings.EqualFold(c.Scheme, "Bearer") && c.Get("realm") != "" {
				return c, true
			}
		}
	}
	return Challenge{}, false
}

// fetch asks the challenge's realm for an anonymous token.
func (b *Bearer) fetch(req *http.Request, c Challenge) (string, time.Duration, error) {
	realm, err := url.Parse(c.Get("realm"))
	if err != nil || (realm.Scheme != "https" && realm.Scheme != "http") || realm.User != nil {
		return "", 0, fmt.Errorf("%w: %q", ErrRealmRefused, c.Get("realm"))
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
	resp, err := b.Next.RoundTrip(treq)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("token service answered %d", resp.StatusCode)
	}
	body, err := httpbody.Read(resp.Body, MaxTokenBody)
	if err != nil {
		return "", 0, fmt.Errorf("token response: %w", err)
	}
	tok, ttl, err := ParseToken(body)
	if err != nil {
		return "", 0, err
	}
	// Cached at least a minute, however short a lifetime the realm names.
	return tok, max(ttl, defaultTokenTTL), nil
}

func (b *Bearer) cached(key string) (string, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.cache[key]
	if !ok || time.Now().After(t.expires) {
		return "", false
	}
	return t.token, true
}

func (b *Bearer) store(key, tok string, ttl time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cache == nil || len(b.cache) >= maxCachedTokens {
		b.cache = map[string]cachedToken{}
	}
	// Renew a little early so a token does not expire in flight.
	b.cache[key] = cachedToken{token: tok, expires: time.Now().Add(ttl - ttl/10)}
}
