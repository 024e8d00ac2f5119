package relay

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/registry"
	"github.com/registry-relay/registry-relay/internal/upstreamauth"
)

// readOnly is the answer to any write: the relay only pulls.
func readOnly(method string) *oci.Error {
	return oci.Err(oci.CodeUnsupported, "registry-relay is read-only: "+method+" is not supported")
}

// serveRegistry handles /v2/…: resolve the request once, decide whether
// it may go ahead, then act: from the cache or through the route's
// upstream.
func (rl *Relay) serveRegistry(w http.ResponseWriter, r *http.Request) {
	x := exchangeFrom(r.Context())
	if err := rl.resolveRegistry(w, r, x); err != nil {
		err.ServeHTTP(w, r)
		return
	}
	if f := rl.admit(r, x); f != nil {
		rl.refuse(w, r, x, f)
		return
	}
	release, f := rl.startTransfer(r, x)
	if f != nil {
		rl.refuse(w, r, x, f)
		return
	}
	defer release()
	if rl.cache != nil {
		rl.prepareCache(r, x)
		if rl.serveFromCache(w, r, x) {
			return
		}
	}
	rl.upstreams[x.route.Name].proxy.ServeHTTP(w, r)
}

// resolveRegistry turns a /v2/ request into what the relay will ask the
// upstream: the parsed path, refusing what a read-only relay must not do,
// the route (on the mirror host, from the path's registry prefix or ?ns=),
// the upstream's repository name and URL, and the header it sends.
func (rl *Relay) resolveRegistry(w http.ResponseWriter, r *http.Request, x *exchange) *oci.Error {
	p, perr := oci.ParsePath(r.URL.EscapedPath())
	if p.Kind != "" {
		x.kind = p.Kind
	}
	switch {
	case perr != nil:
		return perr
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		return readOnly(r.Method)
	}
	if err := upstreamHeader(r.Header); err != nil {
		return err
	}
	if p.Upload {
		return oci.Err(oci.CodeUnsupported, "registry-relay is read-only: uploads are not supported")
	}
	x.path = p
	if x.mirror != nil {
		if err := rl.resolveMirror(x, &p, r.URL.Query().Get("ns")); err != nil {
			return err
		}
		rl.track(x)
	}
	up := p
	if p.Name != "" {
		up.Name = x.route.Repository(p.Name)
	}
	target := *x.route.Upstream
	target.Path = up.String()
	q := r.URL.Query()
	q.Del("ns") // containerd's mirror hint; the route already names the upstream
	target.RawQuery = q.Encode()
	x.target, x.upstreamRepo = &target, up.Name
	return nil
}

// upstream is one route's way to its registry, built once in New and
// configured with the route it serves: the proxy (fallback, redirects,
// blob redirects passed on when so configured), the cache's fills (the
// same, with redirects always followed) and its authorization checks (the
// primary upstream only).
type upstream struct {
	proxy        *httputil.ReverseProxy
	fetch, check http.RoundTripper
}

func (rl *Relay) newUpstream(route *registry.Route) *upstream {
	g, max := rl.hops, rl.opts.MaxRedirects
	// The fallback's answers are streamed as they come: no passing blob
	// redirects to a client that never saw its realm.
	secondary := upstreamauth.New(newRedirectFollower(route, g, max, false), rl.authHostsOf)
	following := newRedirectFollower(route, g, max, false)
	fallback := func(primary http.RoundTripper) http.RoundTripper {
		return &fallbackTransport{route: route, primary: primary, secondary: secondary, metrics: rl.opts.Metrics, log: rl.log}
	}
	return &upstream{
		proxy: rl.newReverseProxy(fallback(newRedirectFollower(route, g, max, rl.opts.PassBlobRedirects))),
		fetch: fallback(following),
		check: following,
	}
}

func (rl *Relay) newReverseProxy(transport http.RoundTripper) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			x := exchangeFrom(pr.In.Context())
			pr.Out.URL = x.target
			pr.Out.Host = ""
			// The header was made the upstream's by upstreamHeader, which
			// the cache keys on; Rewrite already dropped Forwarded and
			// X-Forwarded-*, and ReverseProxy re-adds Upgrade for a
			// client that asked for one, so it goes again here.
			pr.Out.Header = pr.In.Header.Clone()
			pr.Out.Header.Del("Forwarded")
			pr.Out.Header.Del("X-Forwarded-For")
			pr.Out.Header.Del("X-Forwarded-Host")
			pr.Out.Header.Del("X-Forwarded-Proto")
			if clientAuthorization(pr.In) == "" {
				pr.Out.Header.Del("Authorization") // none, or the mirror's stand-in for "no token needed"
			}
			// A GET or HEAD has no body to relay: one a client attached
			// stays here.
			pr.Out.Body, pr.Out.ContentLength, pr.Out.TransferEncoding = http.NoBody, 0, nil
		},
		Transport:  transport,
		BufferPool: bufferPool{},
		// Flush every write: clients see headers and first bytes at once
		// even when an upstream or CDN trickles; blob-sized writes bypass
		// the server's buffer anyway, so this costs next to nothing.
		FlushInterval:  -1,
		ModifyResponse: rl.modifyResponse,
		ErrorHandler:   rl.proxyError,
		ErrorLog:       slog.NewLogLogger(rl.log.Handler(), slog.LevelDebug),
	}
}

// modifyResponse adapts an upstream answer for the relay's clients.
func (rl *Relay) modifyResponse(resp *http.Response) error {
	x := exchangeFrom(resp.Request.Context())
	x.upstreamStatus = resp.StatusCode
	rl.opts.Metrics.Upstream(x.route.Name, resp.StatusCode)
	resp.Header.Del("Set-Cookie") // the upstream's cookies mean nothing on the relay's domain
	if v := resp.Header.Get("RateLimit-Remaining"); v != "" {
		rl.opts.Metrics.RateLimitRemaining(x.route.Name, v)
	}
	if resp.StatusCode == http.StatusUnauthorized {
		rl.rewriteChallenges(resp, x)
	}
	boundBody(resp, x.kind)
	if x.kind == oci.KindOther && x.path.Name == "" {
		filterCatalog(resp, rl.policy(x.route))
	}
	rl.opts.Metrics.CountUpstreamBody(resp, x.route.Name)
	if rl.cache != nil {
		if (resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests) && rl.staleAvailable(resp.Request, x) {
			// proxyError answers from the cache, as for an upstream that
			// could not be reached: one stale path, one answer.
			discard(resp)
			return &upstreamFailure{status: resp.StatusCode}
		}
		rl.observeForCache(resp, x)
	}
	if resp.StatusCode >= 400 {
		replaceNonJSONError(resp, x.kind)
		return nil
	}
	relativizeLinks(resp, x)
	// A CDN answering a followed redirect does not know the digest; the
	// request named it, and clients verify the bytes against it anyway.
	if (x.kind == oci.KindBlob || x.kind == oci.KindManifest) && x.path.IsDigest() && resp.Header.Get("Docker-Content-Digest") == "" &&
		(resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent) {
		resp.Header.Set("Docker-Content-Digest", x.path.Reference)
	}
	return nil
}

// rewriteChallenges points every Bearer realm at the relay's token
// endpoint on the host the client used, under the id of the upstream realm
// it replaces. A realm the route may not contact still points at the relay,
// whose token endpoint then explains the refusal.
func (rl *Relay) rewriteChallenges(resp *http.Response, x *exchange) {
	in := resp.Request.Context()
	values := resp.Header.Values("WWW-Authenticate")
	if len(values) == 0 {
		return
	}
	base := x.scheme + "://" + x.host + "/token"
	var scopeName func(string) string
	if x.prefix != "" {
		scopeName = func(name string) string { return x.prefix + name }
	}
	relayRealm := func(upstream string) string {
		id, err := rl.realms.Learn(x.route, upstream)
		if err != nil {
			rl.log.ErrorContext(in, "upstream advertised a refused token realm", "route", x.route.Name, "err", err)
			return base
		}
		return base + "/" + id
	}
	out := make([]string, 0, len(values))
	for _, v := range values {
		res, err := auth.RewriteBearerRealm(v, relayRealm, scopeName)
		if err != nil {
			// Pass it on: a lenient client may still cope, as it would
			// talking to the upstream directly.
			rl.log.WarnContext(in, "passing on an unparsable upstream challenge", "route", x.route.Name, "err", err)
			out = append(out, v)
			continue
		}
		for _, svc := range res.Services {
			rl.realms.NoteService(x.route, svc)
		}
		out = append(out, res.Headers...)
	}
	resp.Header["Www-Authenticate"] = out
}

// relativizeLinks keeps pagination (tags/list, referrers, _catalog) on
// the relay: a Link header naming the upstream absolutely would send the
// client around it.
func relativizeLinks(resp *http.Response, x *exchange) {
	links := resp.Header.Values("Link")
	if len(links) == 0 {
		return
	}
	origin := "<" + x.route.Upstream.Scheme + "://" + x.route.Upstream.Host + "/"
	out := make([]string, len(links))
	for i, l := range links {
		out[i] = strings.ReplaceAll(l, origin, "</")
	}
	resp.Header["Link"] = out
}

// replaceNonJSONError swaps HTML or plain-text upstream errors (CDNs, load
// balancers) for an OCI error body: registry clients only parse JSON.
func replaceNonJSONError(resp *http.Response, kind oci.Kind) {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == "application/json" || strings.HasSuffix(mt, "+json") {
		return
	}
	replaceError(resp, kind, "upstream answered "+strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode))
}

// replaceError swaps an error answer's body for the relay's own OCI error
// with the same status.
func replaceError(resp *http.Response, kind oci.Kind, message string) {
	discard(resp)
	code := oci.CodeForStatus(resp.StatusCode)
	if resp.StatusCode == http.StatusNotFound {
		code = map[oci.Kind]oci.ErrorCode{oci.KindManifest: oci.CodeManifestUnknown, oci.KindBlob: oci.CodeBlobUnknown}[kind]
		if code == "" {
			code = oci.CodeNameUnknown
		}
	}
	setBody(resp, oci.Err(code, message).Body(), "application/json; charset=utf-8")
}

// setBody replaces resp's body with b.
func setBody(resp *http.Response, b []byte, contentType string) {
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Set("Content-Type", contentType)
	resp.Header.Del("Content-Encoding")
}

// proxyError answers for an upstream that could not be reached or whose
// redirects were refused; a client that went away gets nothing.
func (rl *Relay) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	x := exchangeFrom(r.Context())
	if r.Context().Err() != nil {
		x.clientGone = true
		return
	}
	var re *redirectError
	if errors.As(err, &re) {
		rl.log.WarnContext(r.Context(), "upstream redirect refused", "route", x.route.Name, "err", err)
		oci.BadGateway(oci.CodeUnavailable, re.Error()).ServeHTTP(w, r)
		return
	}
	var failed *upstreamFailure
	if !errors.As(err, &failed) {
		rl.opts.Metrics.Upstream(x.route.Name, 0) // an answer was counted when it came
	}
	if rl.cache != nil && rl.staleTag(w, r, x) {
		rl.log.WarnContext(r.Context(), "upstream failed; served a stale tag", "route", x.route.Name, "err", err)
		return
	}
	if failed != nil {
		// The stale entry went between the two looks (evicted): the
		// upstream's own answer is gone, so say what it was.
		oci.BadGateway(oci.CodeUnavailable, err.Error()).ServeHTTP(w, r)
		return
	}
	rl.log.WarnContext(r.Context(), "upstream request failed", "route", x.route.Name, "upstream", x.target.Host, "err", err)
	oci.UpstreamError(err).ServeHTTP(w, r)
}

// upstreamFailure is an upstream's 5xx or 429 that a stale cache entry
// stands in for.
type upstreamFailure struct{ status int }

func (e *upstreamFailure) Error() string {
	return "upstream answered " + strconv.Itoa(e.status) + " " + http.StatusText(e.status)
}

// bufferPool hands ReverseProxy 32 KiB buffers, so streaming many blobs
// does not allocate per request.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }
