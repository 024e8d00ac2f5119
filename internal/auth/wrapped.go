package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/registry-relay/registry-relay/internal/oci"
)

// defaultTokenTTL is the distribution spec's token lifetime when the
// token service names none.
const defaultTokenTTL = 60 * time.Second

// serveWrapped answers a token request from a client the relay has
// authenticated: the upstream token comes from an anonymous request (or
// the route's own account, pull only), never with the client's relay
// credentials, and goes back wrapped in a relay token.
func (p *TokenProxy) serveWrapped(w http.ResponseWriter, r *http.Request, tr *TokenRequest, tg Target, realm *url.URL, lookupErr error) (int, bool) {
	if errors.Is(lookupErr, ErrNoTokenAuth) {
		writeToken(w)(tg.Issue("", time.Hour))
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
	mapName := tg.MapName
	if mapName == nil {
		mapName = tg.Route.Repository
	}
	get := r.Clone(r.Context())
	get.Method = http.MethodGet
	get.Header = http.Header{"User-Agent": r.Header.Values("User-Agent")}
	out, err := p.upstreamRequest(get, anonymous, tg.Route, realm, mapName)
	if err != nil {
		oci.Err(oci.CodeUnknown, "building the token request failed").ServeHTTP(w, r)
		return 0, false
	}
	resp, err := p.Transport(tg.Route).RoundTrip(out)
	if err != nil {
		oci.UpstreamError(err).ServeHTTP(w, r)
		return 0, true
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody))
	if err != nil || resp.StatusCode != http.StatusOK {
		writeTokenResponse(w, r, resp, body)
		return resp.StatusCode, true
	}
	tok, ttl, err := readToken(bytes.NewReader(body))
	if err != nil {
		oci.BadGateway(oci.CodeUnavailable, "token service answered without a token").ServeHTTP(w, r)
		return resp.StatusCode, true
	}
	writeToken(w)(tg.Issue(tok, ttl))
	return resp.StatusCode, true
}

// writeToken returns a function that answers with a token and the
// lifetime it is really good for.
func writeToken(w http.ResponseWriter) func(token string, ttl time.Duration) {
	return func(token string, ttl time.Duration) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"token": token, "access_token": token,
			"expires_in": int(ttl.Seconds()), "issued_at": time.Now().UTC().Format(time.RFC3339),
		})
	}
}
