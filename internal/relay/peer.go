package relay

import (
	"hash"
	"io"
	"net/http"
	"net/url"

	godigest "github.com/opencontainers/go-digest"

	"github.com/registry-relay/registry-relay/internal/httpbody"
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
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(flushWriter{w}, io.LimitReader(resp.Body, httpbody.MaxError))
		return true
	}
	// The bytes are hashed on their way and the last one held back until
	// they match the digest: if the owner dies half-way, the rest comes
	// from the upstream by Range, and the client still gets one verified
	// body, or a cut.
	out := newHoldBack(flushWriter{w}, x.path.Reference)
	if out == nil {
		panic(http.ErrAbortHandler) // a digest the relay cannot verify (the path parser lets none through)
	}
	buf := buffers.Get().(*[]byte)
	defer buffers.Put(buf)
	n, err := io.CopyBuffer(out, resp.Body, *buf)
	if err != nil && r.Context().Err() == nil {
		rl.log.WarnContext(r.Context(), "peer transfer failed mid-body; resuming from the upstream", "route", x.route.Name,
			"peer", owner.Host, "offset", n, "err", err)
		err = rl.resume(r, x, out, n, *buf)
	}
	if err != nil || !out.finish() {
		if r.Context().Err() == nil {
			rl.log.WarnContext(r.Context(), "blob through a peer not completed", "route", x.route.Name, "peer", owner.Host, "err", err)
		}
		panic(http.ErrAbortHandler) // the client sees a cut, never a short or wrong body
	}
	return true
}

// resume fetches a blob from offset on from the route's upstream, for a
// transfer whose first bytes came from a peer that then failed.
func (rl *Relay) resume(r *http.Request, x *exchange, out io.Writer, offset int64, buf []byte) error {
	resp, err := rl.fillRequest(r.Context(), r, x, offset)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.CopyBuffer(out, resp.Body, buf)
	return err
}

// holdBack writes a body through, hashing it, and keeps its last byte
// until finish finds the whole matches the digest.
type holdBack struct {
	w       io.Writer
	h       hash.Hash
	digest  string
	pending []byte
}

func newHoldBack(w io.Writer, dg string) *holdBack {
	alg := godigest.Digest(dg).Algorithm()
	if !alg.Available() {
		return nil
	}
	return &holdBack{w: w, h: alg.Hash(), digest: dg, pending: make([]byte, 0, 1)}
}

func (b *holdBack) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b.h.Write(p)
	if len(b.pending) > 0 {
		if _, err := b.w.Write(b.pending); err != nil {
			return 0, err
		}
	}
	if _, err := b.w.Write(p[:len(p)-1]); err != nil {
		return 0, err
	}
	b.pending = append(b.pending[:0], p[len(p)-1])
	return len(p), nil
}

// finish writes the held byte if what passed matches the digest.
func (b *holdBack) finish() bool {
	if godigest.NewDigest(godigest.Digest(b.digest).Algorithm(), b.h).String() != b.digest {
		return false
	}
	_, err := b.w.Write(b.pending)
	return err == nil
}
