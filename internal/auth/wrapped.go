package auth

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/registry-relay/registry-relay/internal/oci"
)

// serveWrapped answers a token request from a client the relay has
// authenticated: the upstream token comes from an anonymous request (or
// the route's own account, pull only), never with the client's relay
// credentials, and goes back wrapped in a relay token.
func (p *TokenProxy) serveWrapped(w http.ResponseWriter, r *http.Request, tr *TokenRequest, tg Target, realm *url.URL, lookupErr error) (int, bool) {
	if errors.Is(lookupErr, ErrNoTokenAuth) {
		tok, ttl := tg.Issue("", time.Hour)
		writeToken(w, tok, ttl)
		return 0, false
	}
	if lookupErr != nil {
		p.fail(w, r, tg.Route, lookupErr)
		return 0, false
	}
	params := url.Values{}
	for _, k := range []string{"scope", "service", "offline_token"} {
		params[k] = tr.params[k]
	}
	if params.Get("service") == RelayService || params.Get("service") == "" {
		params.Set("service", p.Realms.Service(tg.Route))
	}
	anonymous := &TokenRequest{params: params}
	get := r.Clone(r.Context())
	get.Method = http.MethodGet
	get.Header = http.Header{"User-Agent": r.Header.Values("User-Agent")}
	out, err := p.upstreamRequest(get, anonymous, tg, realm)
	if err != nil {
		oci.Err(oci.CodeUnknown, "building the token request failed").ServeHTTP(w, r)
		return 0, false
	}
	resp, err := p.Transport(tg.Route).RoundTrip(out)
	if err != nil {
		oci.UpstreamError(err).ServeHTTP(w, r)
		return 0, true
	}
	body, ok := p.readTokenBody(w, r, tg.Route, resp)
	switch {
	case !ok:
	case resp.StatusCode != http.StatusOK:
		writeTokenResponse(w, r, resp, body)
	default:
		tok, ttl, err := ParseToken(body)
		if err != nil {
			oci.BadGateway(oci.CodeUnavailable, "token service answered without a token").ServeHTTP(w, r)
			break
		}
		tok, ttl = tg.Issue(tok, ttl)
		writeToken(w, tok, ttl)
	}
	return resp.StatusCode, true
}
