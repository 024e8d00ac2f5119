package auth

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/registry-relay/registry-relay/internal/httpbody"
	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// maxFormBody bounds an OAuth2 token POST's form: a few hundred bytes.
const maxFormBody = 64 << 10

// formReadTimeout bounds the wait for a token POST body.
const formReadTimeout = 30 * time.Second

// TokenProxy serves the relay's token endpoint: it forwards a client's
// token request to the realm its route's upstream advertised, with scopes
// patched for the upstream and the client's credentials untouched.
type TokenProxy struct {
	// Transport returns what carries a route's requests to its realms. A
	// realm is a destination an upstream named, so this is the route's
	// guarded transport (public addresses only unless the route's own
	// upstream is on the operator's network); redirects are not followed.
	Transport func(*registry.Route) http.RoundTripper
	Realms    *Realms
	Log       *slog.Logger
}

// TokenRequest is a client's token request, read once so that its scopes
// can pick the upstream before it is forwarded.
type TokenRequest struct {
	post   bool
	params url.Values // the query of a GET, the form of a POST
}

// ReadTokenRequest reads a GET query or an OAuth2 POST form; the form is
// bounded in size and in time (the server has no ReadTimeout, blobs being
// long, so a trickled form must be cut off here).
func ReadTokenRequest(w http.ResponseWriter, r *http.Request) (*TokenRequest, *oci.Error) {
	switch r.Method {
	case http.MethodGet:
		return &TokenRequest{params: r.URL.Query()}, nil
	case http.MethodPost:
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(formReadTimeout))
		form, oerr := readForm(r)
		if oerr != nil {
			return nil, oerr
		}
		return &TokenRequest{post: true, params: form}, nil
	}
	return nil, oci.Err(oci.CodeUnsupported, "the token endpoint accepts GET and POST")
}

// Credentials are the username and password the client sent: HTTP Basic
// on a GET, the password grant's form fields on a POST.
func (tr *TokenRequest) Credentials(r *http.Request) (user, password string, ok bool) {
	if tr.post {
		if tr.params.Get("grant_type") != "password" {
			return "", "", false
		}
		user, password = tr.params.Get("username"), tr.params.Get("password")
		return user, password, user != ""
	}
	return r.BasicAuth()
}

// Scopes lists the individual scopes requested.
func (tr *TokenRequest) Scopes() []string {
	var out []string
	for _, v := range tr.params["scope"] {
		out = append(out, strings.Fields(v)...)
	}
	return out
}

// Target says where a token request goes.
type Target struct {
	Route *registry.Route
	// RealmID names the realm of the challenge the client received.
	RealmID string
	// MapName maps a repository name in a client scope to the upstream's
	// (Route.Repository when nil).
	MapName func(string) string
	// NoAuthToken answers for an upstream without token auth with
	// AnonymousToken. The mirror host needs it: its ping challenges for
	// Docker Hub, so clients ask for tokens for anonymous registries too.
	NoAuthToken bool
	// Issue, when set, means the client authenticated to the relay itself
	// (RELAY_HTPASSWD_FILE): its credentials are not the upstream's, so the
	// upstream token is fetched anonymously (or with the route's own
	// account) and handed out wrapped by Issue.
	// Issue returns the relay token and the lifetime to announce for it.
	Issue func(upstreamToken string, ttl time.Duration) (string, time.Duration)
	// Permits is the route's repository policy as the relay applies it
	// (<NAME>_ALLOW_REPOS, _DENY_REPOS); nil permits every repository.
	Permits func(repo string) bool
}

// mapName is the target's mapping of client names to the upstream's.
func (tg Target) mapName() func(string) string {
	if tg.MapName != nil {
		return tg.MapName
	}
	return tg.Route.Repository
}

// RelayService is the service name in challenges the relay issues itself.
const RelayService = "registry-relay"

// AnonymousToken is what the relay hands out for upstreams that need no
// token; the relay never forwards it.
const AnonymousToken = "registry-relay-anonymous"

// Serve forwards tr to the realm the relay named when it rewrote the
// client's challenge (GET: Docker's token flow; POST: the OAuth2 password
// or refresh-token grant containerd tries first). It returns the
// upstream's status, 0 when the upstream could not be reached, and
// tried=false when no upstream request was made.
func (p *TokenProxy) Serve(w http.ResponseWriter, r *http.Request, tr *TokenRequest, tg Target) (status int, tried bool) {
	route := tg.Route
	realm, err := p.Realms.Lookup(r.Context(), route, tg.RealmID)
	if tg.Issue != nil {
		return p.serveWrapped(w, r, tr, tg, realm, err)
	}
	if errors.Is(err, ErrNoTokenAuth) && tg.NoAuthToken {
		writeToken(w, AnonymousToken, time.Hour)
		return 0, false
	}
	if err != nil {
		p.fail(w, r, route, err)
		return 0, false
	}
	out, err := p.upstreamRequest(r, tr, tg, realm)
	if err != nil {
		oci.Err(oci.CodeUnknown, "building the token request failed").ServeHTTP(w, r)
		return 0, false
	}
	resp, err := p.Transport(route).RoundTrip(out)
	if err != nil {
		p.Log.Warn("token request failed", "route", route.Name, "realm_host", realm.Host, "err", err)
		oci.UpstreamError(err).ServeHTTP(w, r)
		return 0, true
	}
	body, ok := p.readTokenBody(w, r, route, resp)
	if ok {
		writeTokenResponse(w, r, resp, body)
	}
	return resp.StatusCode, true
}

// readTokenBody reads and closes a realm's answer, up to MaxTokenBody; an
// unreadable or longer one is answered with a 502 here.
func (p *TokenProxy) readTokenBody(w http.ResponseWriter, r *http.Request, route *registry.Route, resp *http.Response) ([]byte, bool) {
	defer resp.Body.Close()
	body, err := httpbody.Read(resp.Body, MaxTokenBody)
	if err != nil {
		p.Log.Warn("token response unreadable", "route", route.Name, "err", err)
		oci.BadGateway(oci.CodeUnavailable, "token service answered with an unreadable or oversized body").ServeHTTP(w, r)
		return nil, false
	}
	return body, true
}

// upstreamRequest builds the request to the realm. Like Docker's and
// containerd's own token clients, it keeps the realm's query and adds the
// client's parameters to it.
func (p *TokenProxy) upstreamRequest(r *http.Request, tr *TokenRequest, tg Target, realm *url.URL) (*http.Request, error) {
	route := tg.Route
	params := url.Values{}
	for k, vs := range tr.params {
		params[k] = slices.Clone(vs)
	}
	patchScopes(params, tg.mapName())
	denied := restrictScopes(params, tg.Permits)
	useRelayAccount := route.Credentials != nil && ClientCredential(r.Header) == "" && !tr.post
	if useRelayAccount {
		// The relay's account pulls for anonymous clients, and only pulls.
		for i, s := range params["scope"] {
			params["scope"][i] = pullOnly(s)
		}
	}
	if denied > 0 {
		p.Log.Info("token request: dropped scopes the route's repository policy refuses", "route", route.Name, "dropped", denied)
	}
	u := *realm
	var body io.Reader
	if tr.post {
		body = strings.NewReader(params.Encode())
	} else {
		q := u.Query()
		for k, vs := range params {
			q[k] = append(q[k], vs...)
		}
		u.RawQuery = q.Encode()
	}
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		return nil, err
	}
	for _, h := range []string{"User-Agent", "Accept"} {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	if a := ClientCredential(r.Header); a != "" {
		out.Header.Set("Authorization", a)
	}
	if tr.post {
		out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if useRelayAccount {
		out.SetBasicAuth(route.Credentials.Username, route.Credentials.Password)
	}
	return out, nil
}

// restrictScopes drops every repository scope the route's repository
// policy refuses (permits; nil permits all), before any upstream
// token request: a token for a denied repository, minted with the
// client's or the relay's own account, would let a client pull it from
// the upstream directly. It returns how many scopes it dropped; empty
// scope values are removed.
func restrictScopes(params url.Values, permits func(string) bool) int {
	var kept []string
	dropped := 0
	for _, s := range params["scope"] {
		before := len(strings.Fields(s))
		s = registry.FilterScopes(s, func(name string) bool {
			// A name the registry grammar refuses is no repository the
			// relay serves, and a token service might read it as one.
			return oci.ValidateName(name) == nil && (permits == nil || permits(name))
		})
		dropped += before - len(strings.Fields(s))
		if s != "" {
			kept = append(kept, s)
		}
	}
	if kept == nil {
		params.Del("scope")
	} else {
		params["scope"] = kept
	}
	return dropped
}

// ClientCredential is the Authorization a client sent for the upstream;
// the relay's stand-in token (AnonymousToken) means none, and is never
// sent anywhere.
func ClientCredential(h http.Header) string {
	if a := h.Get("Authorization"); a != "Bearer "+AnonymousToken {
		return a
	}
	return ""
}

// pullOnly reduces every repository scope in s to the pull action and
// drops other scopes (registry:catalog:*): the relay's account lends
// anonymous clients pulls, nothing else.
func pullOnly(s string) string {
	var out []string
	for _, f := range strings.Fields(s) {
		if name, ok := registry.ScopeRepository(f); ok {
			typ, _, _ := strings.Cut(f, ":")
			out = append(out, typ+":"+name+":pull")
		}
	}
	return strings.Join(out, " ")
}

// readForm reads the OAuth2 form. A bad form is a fault of the HTTP
// request, which no OCI code names, so it answers with the HTTP status for
// that fault (415, 413, 400) rather than UNSUPPORTED's 405; a 400 also
// sends containerd back to the GET flow.
func readForm(r *http.Request) (url.Values, *oci.Error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, oci.Err(oci.CodeUnsupported, "token POST must be application/x-www-form-urlencoded").
			WithStatus(http.StatusUnsupportedMediaType)
	}
	raw, err := httpbody.Read(r.Body, maxFormBody)
	if err != nil {
		return nil, oci.Err(oci.CodeUnsupported, "token form body unreadable or too large").
			WithStatus(http.StatusRequestEntityTooLarge)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, oci.Err(oci.CodeUnsupported, "malformed token form body").WithStatus(http.StatusBadRequest)
	}
	return form, nil
}

// patchScopes rewrites every scope value; clients send several scope
// parameters (containerd) or one space-separated value (OAuth2 form).
func patchScopes(v url.Values, mapName func(string) string) {
	for i, s := range v["scope"] {
		v["scope"][i] = registry.MapScopeNames(s, mapName)
	}
}

// writeTokenResponse relays the realm's answer. Error answers that are not
// JSON become OCI errors: containerd falls back from POST to GET only on a
// JSON 404/405, and no client can use an HTML error page.
func writeTokenResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, body []byte) {
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode >= 400 && !isJSON(ct, body) {
		// The token service's own status is kept: containerd's POST-to-GET
		// fallback and every client's retry decision go by it.
		oci.Err(oci.CodeForStatus(resp.StatusCode), fmt.Sprintf("token service answered %d", resp.StatusCode)).
			WithStatus(resp.StatusCode).ServeHTTP(w, r)
		return
	}
	h := w.Header()
	for _, k := range []string{"Content-Type", "Cache-Control", "Pragma", "WWW-Authenticate", "Retry-After", "Date"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	w.WriteHeader(resp.StatusCode)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func isJSON(contentType string, body []byte) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		return true
	}
	b := bytes.TrimSpace(body)
	return mt == "" && len(b) > 0 && b[0] == '{'
}

func (p *TokenProxy) fail(w http.ResponseWriter, r *http.Request, route *registry.Route, err error) {
	switch {
	case errors.Is(err, ErrNoTokenAuth):
		// 404, not UNSUPPORTED's 405: containerd retries a failed POST as a
		// GET on 404 but on 405 only when it holds credentials, and a
		// registry without a token service answers 404 here too.
		oci.Err(oci.CodeUnsupported, fmt.Sprintf("the %s upstream does not use token authentication", route.Name)).
			WithStatus(http.StatusNotFound).ServeHTTP(w, r)
	case errors.Is(err, ErrRealmRefused):
		// The upstream names a token service the route may not use: a
		// gateway fault the operator fixes (the message names the
		// variable), not a refusal of this client.
		p.Log.Error("refusing token realm", "route", route.Name, "err", err)
		oci.BadGateway(oci.CodeUnavailable, err.Error()).ServeHTTP(w, r)
	default:
		p.Log.Warn("token realm discovery failed", "route", route.Name, "err", err)
		oci.UpstreamError(err).ServeHTTP(w, r)
	}
}
