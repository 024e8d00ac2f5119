package relay

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	godigest "github.com/opencontainers/go-digest"

	"github.com/registry-relay/registry-relay/internal/auth"
	"github.com/registry-relay/registry-relay/internal/cache"
	"github.com/registry-relay/registry-relay/internal/oci"
)

// clientAuthorization is the client's own credential for the upstream;
// the mirror's stand-in token means none.
func clientAuthorization(r *http.Request) string { return auth.ClientCredential(r.Header) }

// prepareCache keys the request for the cache before anything is sent, so
// that answers (which may come from a CDN hop without the client's token)
// are recorded against the client's identity.
func (rl *Relay) prepareCache(r *http.Request, x *exchange) {
	// Decisions are per object, not per repository: content is stored by
	// digest, and the upstream's "yes" for one repository says nothing
	// about a digest that only exists in another.
	x.authKey = cache.Key(x.route.Name, x.upstreamRepo+"@"+x.path.Reference, clientAuthorization(r))
	if x.kind == oci.KindManifest && !x.path.IsDigest() {
		// r.Header is what goes upstream (upstreamHeader), so the key
		// names the answer the upstream is asked for.
		x.tagKey = cache.TagKey(x.route.Name, x.upstreamRepo, x.path.Reference, strings.Join(r.Header.Values("Accept"), ","))
	}
}

// authorized reports whether the upstream lets this client read this
// object in this repository: from a recent decision, or by asking the
// primary upstream (never a fallback) with a HEAD of the request's own
// target carrying the client's credentials.
func (rl *Relay) authorized(r *http.Request, x *exchange) bool {
	return rl.cache.Authz.Allowed(r.Context(), x.authKey, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, x.target.String(), nil)
		if err != nil {
			return false, err
		}
		if a := clientAuthorization(r); a != "" {
			req.Header.Set("Authorization", a)
		}
		req.Header["Accept"] = r.Header.Values("Accept")
		resp, err := rl.upstreams[x.route.Name].check.RoundTrip(req)
		if err != nil {
			return false, err
		}
		discard(resp)
		rl.opts.Metrics.Upstream(x.route.Name, resp.StatusCode)
		switch {
		case resp.StatusCode == http.StatusOK:
			return true, nil
		case resp.StatusCode == http.StatusUnauthorized, resp.StatusCode == http.StatusForbidden, resp.StatusCode == http.StatusNotFound:
			return false, nil
		}
		return false, fmt.Errorf("authorization check answered %d", resp.StatusCode)
	})
}

// mayServe is the one answer to "may this client get this cached object
// via this route", which every cache path asks (blob hit, manifest by
// digest, tag hit, stale tag). The route's own upstream must have supplied
// the bytes (meta's provenance; another route's upstream saying 200 for a
// digest proves nothing about content it never sent), and the client must
// be allowed the object on this route: freshly for a hit, from a decision
// within the TTL for a tag, within StaleMax when serving stale.
func (rl *Relay) mayServe(r *http.Request, x *exchange, meta cache.Meta, result string) bool {
	switch {
	case !meta.From(x.route.Name):
		return false
	case result == cacheStale:
		return rl.authorizedKnown(x, rl.cache.StaleMax)
	case x.tagKey != "" && !rl.authorizedKnown(x, rl.cache.TagTTL):
		return false
	}
	return rl.authorized(r, x)
}

// authorizedKnown answers only from a decision younger than maxAge.
func (rl *Relay) authorizedKnown(x *exchange, maxAge time.Duration) bool {
	allowed, ok := rl.cache.Authz.Known(x.authKey, maxAge)
	return ok && allowed
}

// observeForCache learns from a proxied answer: who may read the
// repository, and the manifest itself, captured as it streams by.
func (rl *Relay) observeForCache(resp *http.Response, x *exchange) {
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent:
		rl.cache.Authz.Record(x.authKey, true)
	case http.StatusUnauthorized, http.StatusForbidden:
		rl.cache.Authz.Record(x.authKey, false)
	}
	// An encoded body is not the manifest its digest names (the relay asks
	// for none, but an upstream may send one anyway): it is relayed, not kept.
	encoded := resp.Header.Get("Content-Encoding") != "" && !strings.EqualFold(resp.Header.Get("Content-Encoding"), "identity")
	if x.capture && resp.StatusCode == http.StatusOK && resp.ContentLength <= maxManifestBytes && !encoded {
		resp.Body = &manifestCapture{rl: rl, x: x, ctx: context.WithoutCancel(resp.Request.Context()), body: resp.Body,
			contentType: resp.Header.Get("Content-Type"), headerDigest: resp.Header.Get("Docker-Content-Digest")}
	}
}

// manifestCapture buffers a manifest on its way to the client and, at its
// end, stores it under the digest its bytes hash to, if that matches what
// the request and the upstream said.
type manifestCapture struct {
	rl *Relay
	x  *exchange
	// ctx stores the manifest: the request's, without its cancellation,
	// since the bytes are whole whether or not the client is still there.
	ctx                       context.Context
	body                      io.ReadCloser
	buf                       bytes.Buffer
	contentType, headerDigest string
	overflow                  bool
}

func (m *manifestCapture) Read(p []byte) (int, error) {
	n, err := m.body.Read(p)
	if !m.overflow {
		if m.buf.Len()+n > maxManifestBytes {
			m.overflow = true
		} else {
			m.buf.Write(p[:n])
		}
	}
	if err == io.EOF && !m.overflow {
		m.store()
	}
	return n, err
}

func (m *manifestCapture) Close() error { return m.body.Close() }

func (m *manifestCapture) store() {
	// Hashed with the algorithm the request named (sha256 for a tag), so a
	// sha512 pull is kept too.
	alg := godigest.Canonical
	if m.x.path.IsDigest() {
		alg = godigest.Digest(m.x.path.Reference).Algorithm()
	}
	if !alg.Available() {
		return
	}
	digest := alg.FromBytes(m.buf.Bytes()).String()
	if (m.headerDigest != "" && m.headerDigest != digest) || (m.x.path.IsDigest() && m.x.path.Reference != digest) {
		m.rl.log.WarnContext(m.ctx, "not caching a manifest whose bytes do not match its digest", "route", m.x.route.Name, "digest", digest)
		return
	}
	w, err := m.rl.cache.Store.Create(m.ctx, digest, cache.Meta{ContentType: m.contentType, Routes: []string{m.x.route.Name}})
	if err != nil {
		return
	}
	if _, err := w.Write(m.buf.Bytes()); err != nil || w.Commit() != nil {
		w.Abort()
		return
	}
	if m.x.tagKey != "" {
		m.rl.cache.Tags.Put(m.x.tagKey, digest)
	}
}

// staleTag answers a tag request from a stale resolution when the
// upstream failed (unreachable, or answered 5xx or 429), if one is young
// enough and the client was allowed to read the repository at most
// StaleMax ago. It is the one stale path: served like any cached content,
// with its digest as ETag, so a conditional request gets a 304.
func (rl *Relay) staleTag(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	content, digest, ok := rl.staleContent(r, x)
	if !ok {
		return false
	}
	defer content.Close()
	rl.markCache(x, cacheStale)
	serveContent(w, r, content, digest, cacheStale)
	return true
}

// staleAvailable reports whether staleTag would answer this request.
func (rl *Relay) staleAvailable(r *http.Request, x *exchange) bool {
	content, _, ok := rl.staleContent(r, x)
	if ok {
		content.Close()
	}
	return ok
}

// staleContent is the cached manifest a failed tag request may be served
// from: one predicate, so that deciding to stand in and standing in agree.
func (rl *Relay) staleContent(r *http.Request, x *exchange) (cache.Content, string, bool) {
	if x.tagKey == "" {
		return nil, "", false
	}
	e, ok := rl.cache.Tags.Get(x.tagKey, rl.cache.StaleMax)
	if !ok {
		return nil, "", false
	}
	content, ok := rl.servable(r, x, e.Digest, cacheStale)
	return content, e.Digest, ok
}
