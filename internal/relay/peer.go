package relay

import (
	"io"
	"net/http"
	"net/url"

	"github.com/registry-relay/registry-relay/internal/peers"
)

// cachePeer marks a blob served through its owner among the peers.
const cachePeer = "peer"

// fromPeer reports whether r is a fill forwarded by another replica of
// this relay (its proof verifies): that replica admitted the client and
// holds its transfer slot, so the checks are not made twice.
func (rl *Relay) fromPeer(r *http.Request) bool {
	proof := r.Header.Get(peers.Header)
	return proof != "" && rl.opts.Peers != nil && rl.opts.Peers.Verify(proof, r.Method, r.Host, r.URL.EscapedPath())
}

// forwardToOwner sends a blob miss to the peer that owns the digest,
// whose one fill serves every replica, and relays its answer. It reports
// false, having written nothing, when the owner cannot answer (down, or a
// 5xx): the caller then fills here, so a peer's failure costs a second
// upstream fetch, never a pull.
func (rl *Relay) forwardToOwner(w http.ResponseWriter, r *http.Request, x *exchange, owner *url.URL) bool {
	u := *owner
	u.Path, u.RawPath = r.URL.Path, r.URL.RawPath
	req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, u.String(), nil)
	if err != nil {
		return false
	}
	req.Host = r.Host
	for _, k := range []string{"Accept", "User-Agent", "Authorization"} {
		if v := r.Header.Values(k); len(v) > 0 {
			req.Header[k] = v
		}
	}
	req.Header.Set(peers.Header, rl.opts.Peers.Sign(http.MethodGet, r.Host, r.URL.EscapedPath()))
	resp, err := rl.peerTransport.RoundTrip(req)
	if err != nil {
		rl.log.WarnContext(r.Context(), "peer unreachable; filling here", "route", x.route.Name, "peer", owner.Host, "err", err)
		return false
	}
	if resp.StatusCode >= 500 {
		discard(resp)
		rl.log.WarnContext(r.Context(), "peer failed; filling here", "route", x.route.Name, "peer", owner.Host, "status", resp.StatusCode)
		return false
	}
	defer resp.Body.Close()
	rl.markCache(x, cachePeer)
	h := w.Header()
	for _, k := range []string{"Content-Type", "Content-Length", "Docker-Content-Digest", "Docker-Distribution-Api-Version", "Etag", "Www-Authenticate"} {
		if v := resp.Header.Values(k); len(v) > 0 {
			h[k] = v
		}
	}
	h.Set("X-Relay-Cache", cachePeer)
	w.WriteHeader(resp.StatusCode)
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	if _, err := io.CopyBuffer(flushWriter{w}, resp.Body, *buf); err != nil {
		if r.Context().Err() == nil {
			rl.log.WarnContext(r.Context(), "peer transfer failed mid-body", "route", x.route.Name, "peer", owner.Host, "err", err)
		}
		panic(http.ErrAbortHandler) // the client sees a cut, never a short body
	}
	return true
}
