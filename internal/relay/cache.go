package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/registry-relay/registry-relay/internal/cache"
	"github.com/registry-relay/registry-relay/internal/oci"
)

// Cache is the pull-through cache the relay consults: content by digest,
// tag resolutions with a TTL, in-progress fills, and which client may read
// which repository.
type Cache struct {
	Store cache.Store
	Fills *cache.Fills
	Tags  *cache.Tags
	Authz *cache.Authz
	// TagTTL is how long a tag resolution is served without asking the
	// upstream; StaleMax how long one may still be served when the
	// upstream fails (stale-if-error).
	TagTTL, StaleMax time.Duration
	// FillTimeout bounds one upstream transfer into the cache. A fill is
	// detached from the client that started it, so that it survives that
	// client while others read it, and ends when its last reader leaves.
	FillTimeout time.Duration
}

// Cache results, for the X-Relay-Cache header and metrics.
const (
	cacheHit       = "hit"
	cacheMiss      = "miss"
	cacheStale     = "stale"
	cacheCoalesced = "coalesced"
	// cacheBypass is an answer the cache stepped aside for (no room, no
	// declared size): streamed from the upstream, not stored.
	cacheBypass = "bypass"
)

// serveFromCache is where the cache decides about a request, once: it
// answers a hit (or a blob fill it leads or joins) and reports that it
// did; for a miss it marks a manifest GET whose answer is to be captured
// (x.capture), which the proxy's response hook then carries out. The one
// other place the cache answers is the stale path, for an upstream that
// failed (staleTag).
func (rl *Relay) serveFromCache(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	x.capture = x.kind == oci.KindManifest && r.Method == http.MethodGet
	switch {
	case x.kind == oci.KindBlob && x.path.IsDigest():
		return rl.cachedBlob(w, r, x)
	case x.kind == oci.KindManifest && x.path.IsDigest():
		return rl.cachedDigest(w, r, x, x.path.Reference, cacheHit)
	case x.kind == oci.KindManifest:
		e, ok := rl.cache.Tags.Get(x.tagKey, rl.cache.TagTTL)
		return ok && rl.cachedDigest(w, r, x, e.Digest, cacheHit)
	}
	return false
}

// cachedDigest serves published content, if the client may read the
// repository and the content is there.
func (rl *Relay) cachedDigest(w http.ResponseWriter, r *http.Request, x *exchange, digest, result string) bool {
	content, ok := rl.servable(r, x, digest, result)
	if !ok {
		return false
	}
	defer content.Close()
	rl.markCache(x, result)
	serveContent(w, r, content, digest, result)
	return true
}

// servable opens published content this client may have through this
// route (mayServe); the caller closes it.
func (rl *Relay) servable(r *http.Request, x *exchange, digest, result string) (cache.Content, bool) {
	content, err := rl.cache.Store.Open(r.Context(), digest)
	if err != nil {
		return nil, false
	}
	// A manifest is served only from an entry captured as a manifest: the
	// same bytes pulled as a blob carry no manifest media type.
	ct := content.Meta().ContentType
	if (x.kind == oci.KindManifest && (ct == "" || ct == "application/octet-stream")) || !rl.mayServe(r, x, content.Meta(), result) {
		content.Close()
		return nil, false
	}
	return content, true
}

func serveContent(w http.ResponseWriter, r *http.Request, content cache.Content, digest, result string) {
	h := w.Header()
	h.Set("Docker-Content-Digest", digest)
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Set("ETag", `"`+digest+`"`)
	h.Set("X-Relay-Cache", result)
	ct := content.Meta().ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	if result == cacheStale {
		h.Set("Warning", `110 - "Response is Stale"`)
	}
	// ServeContent answers Range, If-None-Match and HEAD from the file.
	http.ServeContent(w, r, "", time.Time{}, content)
}

func (rl *Relay) markCache(x *exchange, result string) {
	x.cache = result
	rl.opts.Metrics.Cache(x.route.Name, string(x.kind), result)
}

// cachedBlob serves a blob from the cache, or joins or leads the one
// upstream fetch through this route that fills it. Range requests for
// uncached blobs and HEADs are proxied: they do not fill the cache.
func (rl *Relay) cachedBlob(w http.ResponseWriter, r *http.Request, x *exchange) bool {
	digest := x.path.Reference
	if rl.cachedDigest(w, r, x, digest, cacheHit) {
		return true
	}
	if r.Method == http.MethodHead || r.Header.Get("Range") != "" || !rl.authorized(r, x) {
		return false
	}
	if rl.opts.Peers != nil && !x.fromPeer {
		if owner, self := rl.opts.Peers.Owner(x.route.Name + "\x00" + digest); !self && rl.forwardToOwner(w, r, x, owner) {
			return true
		}
	}
	fill, leader := rl.cache.Fills.Join(x.route.Name, digest)
	result, body, size := cacheMiss, io.ReadCloser(nil), int64(-1)
	if leader {
		if body, size, result = rl.startFill(r, x, fill); body == nil {
			return false
		}
	} else {
		if !fill.Wait(r.Context()) {
			return false
		}
		var err error
		if body, err = fill.Reader(r.Context()); err != nil {
			// The fill ended and let go of its spool: the blob is
			// published, or the fill failed or was abandoned and the
			// request goes upstream itself.
			return rl.cachedDigest(w, r, x, digest, cacheHit)
		}
		result, size = cacheCoalesced, fill.Meta().Size
	}
	defer body.Close()
	rl.markCache(x, result)
	rl.streamFill(w, r, x, body, size, result)
	return true
}

// startFill makes the upstream request for a fill and returns the
// leader's reader of it and the blob's size, or nil if there is nothing
// to fill from (the request is then proxied). The request is detached from
// the client, so that one client leaving does not cut the others off; it
// ends when the last reader leaves (cache.Fill) or after FillTimeout.
func (rl *Relay) startFill(r *http.Request, x *exchange, fill *cache.Fill) (body io.ReadCloser, size int64, result string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), rl.cache.FillTimeout)
	resp, err := rl.fillRequest(ctx, r, x, 0)
	if err != nil {
		cancel()
		fill.Abandon()
		return nil, -1, ""
	}
	meta := cache.Meta{Size: resp.ContentLength, ContentType: "application/octet-stream", Routes: []string{x.route.Name}}
	var w cache.Writer
	if resp.ContentLength < 0 {
		// Room for a blob of unknown size cannot be reserved up front,
		// and running out of it half-way would cut every reader.
		err = errors.New("the upstream sent no Content-Length")
	} else {
		w, err = rl.cache.Store.Create(r.Context(), x.path.Reference, meta)
	}
	if err != nil {
		// A cache fault is not the client's: step aside and stream the
		// answer in hand to this client, uncached.
		rl.log.WarnContext(r.Context(), "not caching a blob", "route", x.route.Name, "err", err)
		fill.Abandon()
		return &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}, resp.ContentLength, cacheBypass
	}
	route := x.route.Name
	body, err = fill.Start(r.Context(), &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}, w, meta,
		func(n int) { rl.opts.Metrics.UpstreamBytes(route, n) })
	if err != nil {
		return nil, -1, ""
	}
	return body, meta.Size, cacheMiss
}

// fillRequest GETs the blob from the route's upstream with the client's
// credentials, from offset on (a Range request when offset > 0); anything
// but the 200, or the 206 starting at offset, is no content to fill from.
func (rl *Relay) fillRequest(ctx context.Context, r *http.Request, x *exchange, offset int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, x.target.String(), nil)
	if err != nil {
		return nil, err
	}
	want := http.StatusOK
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
		want = http.StatusPartialContent
	}
	for _, k := range []string{"User-Agent", "Accept"} {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Header[k] = v
		}
	}
	if a := clientAuthorization(r); a != "" {
		req.Header.Set("Authorization", a)
	}
	resp, err := rl.upstreams[x.route.Name].fetch.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rl.opts.Metrics.Upstream(x.route.Name, resp.StatusCode)
	if start, ok := rangeStart(resp.Header.Get("Content-Range")); resp.StatusCode != want || (offset > 0 && (!ok || start != offset)) {
		discard(resp)
		return nil, fmt.Errorf("fill from byte %d answered %d %q", offset, resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	return resp, nil
}

// rangeStart reads the first byte position of "bytes a-b/n".
func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	first, _, ok2 := strings.Cut(rest, "-")
	n, err := strconv.ParseInt(first, 10, 64)
	return n, ok && ok2 && err == nil && n >= 0
}

// streamFill sends a filling blob to one client. If the fill fails, the
// connection is cut so the client sees an error, never a short body.
func (rl *Relay) streamFill(w http.ResponseWriter, r *http.Request, x *exchange, body io.Reader, size int64, result string) {
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Docker-Content-Digest", x.path.Reference)
	h.Set("Docker-Distribution-Api-Version", "registry/2.0")
	h.Set("X-Relay-Cache", result)
	if size >= 0 {
		h.Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	if _, err := io.CopyBuffer(flushWriter{w}, body, *buf); err != nil {
		if r.Context().Err() == nil {
			rl.log.WarnContext(r.Context(), "cache fill failed mid-transfer", "route", x.route.Name, "err", err)
		}
		panic(http.ErrAbortHandler)
	}
}

// flushWriter flushes after every write, as the proxy does, so followers
// get bytes as they arrive.
type flushWriter struct{ w http.ResponseWriter }

func (f flushWriter) Write(p []byte) (int, error) {
	n, err := f.w.Write(p)
	_ = http.NewResponseController(f.w).Flush()
	return n, err
}

// cancelOnClose ends a fill's upstream request when its body is closed,
// which an abandoned fill does while its copy may still be reading:
// cancelling first makes that pending Read return at once.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
	once   sync.Once
	err    error
}

func (c *cancelOnClose) Close() error {
	c.once.Do(func() {
		c.cancel()
		c.err = c.ReadCloser.Close()
	})
	return c.err
}
