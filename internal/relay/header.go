package relay

import (
	"net/http"
	"net/textproto"
	"strings"

	"github.com/registry-relay/registry-relay/internal/oci"
	"github.com/registry-relay/registry-relay/internal/peers"
)

// hopByHop are the headers that belong to one connection (RFC 9110
// section 7.6.1), which ReverseProxy drops before a request goes upstream,
// and HTTP2-Settings, which an h2c upgrade (curl --http2 on an http://
// URL) must name in Connection (RFC 7540 section 3.2.1).
var hopByHop = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "Http2-Settings",
}

// upstreamHeader turns a client's registry request header into the one the
// relay sends upstream, in place, before anything reads it: the cache keys
// its answers on Accept, asks authorization questions with Authorization,
// and the proxy forwards the rest, so all of them must see the same
// values. Connection may list extra headers to drop on the way (RFC 9110
// section 7.6.1); one that names a header the request carries is refused,
// since honouring it would send upstream a request other than the one the
// relay keys and checks (Connection: Accept turns an index request into a
// single-manifest one). Cookies are for the relay's domain, Upgrade never
// reaches an upstream (the relay only relays plain requests), and neither
// does Accept-Encoding.
func upstreamHeader(h http.Header) *oci.Error {
	for _, v := range h.Values("Connection") {
		for _, token := range strings.Split(v, ",") {
			name := textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(token))
			if name == "" || isHopByHop(name) || name == "Close" {
				continue
			}
			if _, present := h[name]; present {
				// 400, not UNSUPPORTED's 405: the method is fine, the
				// request's header is what the relay refuses.
				return oci.Err(oci.CodeUnsupported, "Connection must not name the end-to-end header "+name).
					WithStatus(http.StatusBadRequest)
			}
		}
	}
	for _, k := range hopByHop {
		h.Del(k)
	}
	h.Del("Cookie")
	h.Del("X-Real-Ip")
	h.Del(peers.Header) // between replicas only, never to an upstream
	// Bodies are relayed and cached byte-exact, as their digests name
	// them: an encoded answer would be stored under the hash of its
	// encoding and served to clients that never asked for it.
	h.Del("Accept-Encoding")
	return nil
}

func isHopByHop(name string) bool {
	for _, k := range hopByHop {
		if k == name {
			return true
		}
	}
	return false
}
