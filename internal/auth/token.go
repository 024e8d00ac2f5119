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
	"strings"
	"time"

	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
)

// Bounds on what the token proxy reads: token responses are a few KiB of
// JSON, OAuth2 form bodies far less.
const (
	maxFormBody  = 64 << 10
	maxTokenBody = 1 << 20
	maxErrorBody = 64 << 10
)

// formReadTimeout bounds the wait for a token POST body.
const formReadTimeout = 30 * time.Second

// TokenProxy serves the relay's token endpoint: it forwards a client's
// token request to the realm its route's upstream advertised, with scopes
// patched for the upstream and the client's credentials untouched.
type TokenProxy struct {
	// Client talks to realms; it must not follow redirects.
	Client *http.Client
	Realms *Realms
	Log    *slog.Logger
}

// Serve handles GET (Docker token flow) and POST (OAuth2 password or
// refresh-token grant, used first by containerd 2.x), forwarding to the
// realm the relay named realmID when it rewrote the client's challenge.
// It returns the upstream's status, 0 when the upstream could not be
// reached, and tried=false when no upstream request was made at all.
func (p *TokenProxy) Serve(w http.ResponseWriter, r *http.Request, route *registry.Route, realmID string) (status int, tried bool) {
	realm, err := p.Realms.Lookup(r.Context(), route, realmID)
	if err != nil {
		p.fail(w, r, route, err)
		return 0, false
	}
	out, oerr := p.upstreamRequest(w, r, route, realm)
	if oerr != nil {
		oerr.ServeHTTP(w, r)
		return 0, false
	}
	resp, err := p.Client.Do(out)
	if err != nil {
		p.Log.Warn("token request failed", "route", route.Name, "realm_host", realm.Host, "err", err)
		oci.UpstreamError(err).ServeHTTP(w, r)
		return 0, true
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil || len(body) > maxTokenBody {
		p.Log.Warn("token response unreadable", "route", route.Name, "err", err, "bytes", len(body))
		oci.NewError(http.StatusBadGateway, oci.CodeUnavailable, "token service answered with an unreadable or oversized body").ServeHTTP(w, r)
		return resp.StatusCode, true
	}
	writeTokenResponse(w, r, resp, body)
	return resp.StatusCode, true
}

// upstreamRequest builds the request to the realm. Like Docker's and
// containerd's own token clients, it keeps the realm's query and adds the
// client's parameters to it.
func (p *TokenProxy) upstreamRequest(w http.ResponseWriter, r *http.Request, route *registry.Route, realm *url.URL) (*http.Request, *oci.Error) {
	u := *realm
	q := u.Query()
	var body io.Reader
	switch r.Method {
	case http.MethodGet:
		for k, vs := range r.URL.Query() {
			q[k] = append(q[k], vs...)
		}
		patchScopes(q, route)
	case http.MethodPost:
		// The server has no ReadTimeout (blobs are long); a form body
		// must not trickle in forever.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(formReadTimeout))
		form, oerr := readForm(r)
		if oerr != nil {
			return nil, oerr
		}
		patchScopes(form, route)
		body = strings.NewReader(form.Encode())
	default:
		return nil, oci.NewError(http.StatusMethodNotAllowed, oci.CodeUnsupported, "the token endpoint accepts GET and POST")
	}
	u.RawQuery = q.Encode()
	out, err := http.NewRequestWithContext(r.Context(), r.Method, u.String(), body)
	if err != nil {
		return nil, oci.NewError(http.StatusInternalServerError, oci.CodeUnknown, "building token request")
	}
	for _, h := range []string{"Authorization", "User-Agent", "Accept", "Content-Type"} {
		if v := r.Header.Values(h); len(v) > 0 {
			out.Header[h] = v
		}
	}
	if body == nil {
		out.Header.Del("Content-Type")
	} else {
		out.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return out, nil
}

func readForm(r *http.Request) (url.Values, *oci.Error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, oci.NewError(http.StatusUnsupportedMediaType, oci.CodeUnsupported, "token POST must be application/x-www-form-urlencoded")
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxFormBody+1))
	if err != nil || len(raw) > maxFormBody {
		return nil, oci.NewError(http.StatusRequestEntityTooLarge, oci.CodeUnsupported, "token form body unreadable or too large")
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, oci.NewError(http.StatusBadRequest, oci.CodeUnsupported, "malformed token form body")
	}
	return form, nil
}

// patchScopes rewrites every scope value; clients send several scope
// parameters (containerd) or one space-separated value (OAuth2 form).
func patchScopes(v url.Values, route *registry.Route) {
	for i, s := range v["scope"] {
		v["scope"][i] = route.Scope(s)
	}
}

// writeTokenResponse relays the realm's answer. Error answers that are not
// JSON become OCI errors: containerd falls back from POST to GET only on a
// JSON 404/405, and no client can use an HTML error page.
func writeTokenResponse(w http.ResponseWriter, r *http.Request, resp *http.Response, body []byte) {
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode >= 400 && !isJSON(ct, body) {
		oci.NewError(resp.StatusCode, oci.CodeForStatus(resp.StatusCode),
			fmt.Sprintf("token service answered %d", resp.StatusCode)).ServeHTTP(w, r)
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
		oci.NewError(http.StatusNotFound, oci.CodeUnsupported,
			fmt.Sprintf("the %s upstream does not use token authentication", route.Name)).ServeHTTP(w, r)
	case errors.Is(err, ErrRealmRefused):
		p.Log.Error("refusing token realm", "route", route.Name, "err", err)
		oci.NewError(http.StatusBadGateway, oci.CodeDenied, err.Error()).ServeHTTP(w, r)
	default:
		p.Log.Warn("token realm discovery failed", "route", route.Name, "err", err)
		oci.UpstreamError(err).ServeHTTP(w, r)
	}
}
