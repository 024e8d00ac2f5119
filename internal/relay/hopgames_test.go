package relay_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

const (
	indexType    = "application/vnd.oci.image.index.v1+json"
	manifestType = "application/vnd.oci.image.manifest.v1+json"
)

var (
	indexBody    = []byte(`{"schemaVersion":2,"mediaType":"` + indexType + `","manifests":[]}`)
	manifestBody = []byte(`{"schemaVersion":2,"mediaType":"` + manifestType + `","layers":[]}`)
)

func sha256Digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// negotiate answers as a registry holding a multi-platform tag: the index
// to a client whose Accept (any of its lines) names the index type, a
// single manifest to everyone else.
func negotiate(w http.ResponseWriter, r *http.Request) {
	body, mt := manifestBody, manifestType
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, indexType) {
			body, mt = indexBody, indexType
		}
	}
	w.Header().Set("Content-Type", mt)
	w.Header().Set("Docker-Content-Digest", sha256Digest(body))
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// hopHosts are the ways a client reaches the Docker Hub route: its own
// host, the mirror host, and either with containerd's ?ns=.
var hopHosts = []struct{ name, host, query string }{
	{"route", hubHost, ""},
	{"mirror", mirrorHost, ""},
	{"route ns", hubHost, "?ns=docker.io"},
	{"mirror ns", mirrorHost, "?ns=docker.io"},
}

// TestConnectionNamingEndToEndHeaderRefused: a Connection header that
// names an end-to-end header the request carries would have ReverseProxy
// drop that header after the relay keyed and checked the request on it;
// it is refused with 400 before anything reaches the upstream, however
// the token is spelled and wherever the request arrives.
func TestConnectionNamingEndToEndHeaderRefused(t *testing.T) {
	up := relaytest.NewRecorder(t, negotiate)
	relay, _ := startRelay(t, hubEnv(up.URL))
	const manifest, blob = "/v2/library/x/manifests/latest", "/v2/library/x/blobs/" + digestA
	for _, tc := range []struct {
		name, path string
		hdr        http.Header
	}{
		{"Accept on a manifest", manifest, http.Header{"Accept": {indexType}, "Connection": {"Accept"}}},
		{"lower-case accept", manifest, http.Header{"Accept": {indexType}, "Connection": {"accept"}}},
		{"in a list", manifest, http.Header{"Accept": {indexType}, "Connection": {"keep-alive, Accept"}}},
		{"padded list", manifest, http.Header{"Accept": {indexType}, "Connection": {" close ,  ACCEPT "}}},
		{"second Connection line", manifest, http.Header{"Accept": {indexType}, "Connection": {"keep-alive", "Accept"}}},
		{"Authorization", manifest, http.Header{"Authorization": {"Bearer tok"}, "Connection": {"Authorization"}}},
		{"Range on a blob", blob, http.Header{"Range": {"bytes=0-1"}, "Connection": {"Range"}}},
		{"If-None-Match", manifest, http.Header{"If-None-Match": {`"x"`}, "Connection": {"If-None-Match"}}},
		{"User-Agent", blob, http.Header{"Connection": {"User-Agent"}}}, // the Go client always sends one
	} {
		for _, h := range hopHosts {
			t.Run(tc.name+"/"+h.name, func(t *testing.T) {
				before := up.Count()
				resp := callWithin(t, relay, http.MethodGet, h.host, tc.path+h.query, tc.hdr, nil)
				msg := wantOCIError(t, resp, http.StatusBadRequest, "UNSUPPORTED")
				if !strings.Contains(msg, "Connection") {
					t.Errorf("message %q does not say what was refused", msg)
				}
				if n := up.Count() - before; n != 0 {
					t.Errorf("the upstream was contacted %d times", n)
				}
			})
		}
	}
}

// TestLegitimateConnectionHeadersStillWork: Connection values that name
// no header the request carries, or only hop-by-hop ones, are served, and
// the upstream sees the end-to-end headers as the client sent them and no
// hop-by-hop header at all.
func TestLegitimateConnectionHeadersStillWork(t *testing.T) {
	up := relaytest.NewRecorder(t, negotiate)
	relay, _ := startRelay(t, hubEnv(up.URL))
	for _, tc := range []struct {
		name string
		hdr  http.Header
	}{
		{"keep-alive", http.Header{"Connection": {"keep-alive"}}},
		{"close", http.Header{"Connection": {"close"}}},
		{"a header not carried", http.Header{"Connection": {"X-Not-Sent"}}},
		{"Keep-Alive named and carried", http.Header{"Connection": {"Keep-Alive"}, "Keep-Alive": {"timeout=5"}}},
		{"TE named and carried", http.Header{"Connection": {"TE"}, "Te": {"trailers"}}},
		// curl --http2 on an http:// URL: HTTP2-Settings is hop-by-hop
		// (RFC 7540 section 3.2.1) and must be named in Connection.
		{"h2c upgrade", http.Header{"Connection": {"Upgrade, HTTP2-Settings"}, "Upgrade": {"h2c"}, "Http2-Settings": {"AAMAAABkAAQCAAAAAAIAAAAA"}}},
	} {
		for _, h := range hopHosts {
			t.Run(tc.name+"/"+h.name, func(t *testing.T) {
				hdr := tc.hdr.Clone()
				hdr.Set("Accept", indexType)
				hdr.Set("Authorization", "Bearer tok")
				resp := callWithin(t, relay, http.MethodGet, h.host, "/v2/library/x/manifests/latest"+h.query, hdr, nil)
				if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !bytes.Equal(body, indexBody) {
					t.Fatalf("got %d %q, want 200 with the index", resp.StatusCode, body)
				}
				got := up.Last(t).Header
				if got.Get("Accept") != indexType || got.Get("Authorization") != "Bearer tok" {
					t.Errorf("upstream saw Accept %q, Authorization %q", got.Get("Accept"), got.Get("Authorization"))
				}
				for _, k := range []string{"Connection", "Keep-Alive", "Te", "Upgrade", "Http2-Settings", "X-Not-Sent"} {
					if v, ok := got[k]; ok {
						t.Errorf("upstream saw %s: %q", k, v)
					}
				}
			})
		}
	}
}

// TestUpgradeAndBodiesStayAtTheRelay: the relay relays plain GETs and
// HEADs; a client's Upgrade and a body attached to a GET do not reach the
// upstream.
func TestUpgradeAndBodiesStayAtTheRelay(t *testing.T) {
	up := relaytest.NewRecorder(t, negotiate)
	relay, _ := startRelay(t, hubEnv(up.URL))
	const path = "/v2/library/x/manifests/latest"

	t.Run("websocket upgrade", func(t *testing.T) {
		hdr := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "Sec-Websocket-Version": {"13"}}
		resp := callWithin(t, relay, http.MethodGet, hubHost, path, hdr, nil)
		if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !bytes.Equal(body, manifestBody) {
			t.Fatalf("got %d %q, want 200 with the manifest", resp.StatusCode, body)
		}
		got := up.Last(t).Header
		if got.Get("Upgrade") != "" || got.Get("Connection") != "" {
			t.Errorf("upstream saw Upgrade %q, Connection %q", got.Get("Upgrade"), got.Get("Connection"))
		}
	})
	for _, tc := range []struct {
		name string
		body func() io.Reader
	}{
		{"GET with Content-Length", func() io.Reader { return strings.NewReader("hello") }},
		// A reader of unknown length makes the client send it chunked.
		{"GET chunked", func() io.Reader { return struct{ io.Reader }{strings.NewReader("hello")} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := callWithin(t, relay, http.MethodGet, hubHost, path, nil, tc.body())
			if body := readAll(t, resp); resp.StatusCode != http.StatusOK || !bytes.Equal(body, manifestBody) {
				t.Fatalf("got %d %q, want 200 with the manifest", resp.StatusCode, body)
			}
			got := up.Last(t)
			if len(got.Body) != 0 || got.ContentLength != 0 || len(got.TransferEncoding) != 0 {
				t.Errorf("upstream received body %q, Content-Length %d, Transfer-Encoding %v", got.Body, got.ContentLength, got.TransferEncoding)
			}
		})
	}
}

// TestConnectionAcceptCannotPoisonTheTagCache is the attack: one
// anonymous request asks for the index with Connection: Accept, which
// would have the upstream answer the single manifest under the index
// request's tag key. It is refused, and every later client asking for the
// index gets the index, from the upstream or from the cache.
func TestConnectionAcceptCannotPoisonTheTagCache(t *testing.T) {
	for _, h := range hopHosts {
		t.Run(h.name, func(t *testing.T) {
			up := relaytest.NewRecorder(t, negotiate)
			relay, _ := startRelay(t, cacheEnv(t, up.URL, t.TempDir()))
			path := "/v2/library/multi/manifests/latest" + h.query
			resp := callWithin(t, relay, http.MethodGet, h.host, path,
				http.Header{"Accept": {indexType}, "Connection": {"Accept"}}, nil)
			if body := readAll(t, resp); resp.StatusCode != http.StatusBadRequest {
				t.Errorf("Connection: Accept got %d %q, want 400", resp.StatusCode, body)
			}
			if up.Count() != 0 {
				t.Errorf("the refused request reached the upstream")
			}
			for i, want := range []string{"", "hit", "hit"} {
				resp := callWithin(t, relay, http.MethodGet, h.host, path, http.Header{"Accept": {indexType}}, nil)
				body := readAll(t, resp)
				if resp.StatusCode != http.StatusOK || !bytes.Equal(body, indexBody) || resp.Header.Get("Content-Type") != indexType {
					t.Fatalf("index request %d (X-Relay-Cache %q): got %d %s %q, want the index",
						i, resp.Header.Get("X-Relay-Cache"), resp.StatusCode, resp.Header.Get("Content-Type"), body)
				}
				if got := resp.Header.Get("X-Relay-Cache"); want == "hit" && got != want {
					t.Errorf("index request %d: X-Relay-Cache %q, want %q (is the tag cache in play?)", i, got, want)
				}
			}
		})
	}
}

// TestTagKeyTakesEveryAcceptValue: a client that sends its media types on
// two Accept lines asks for something other than one that sends only the
// first line; neither is served the other's cached answer, whichever
// comes first.
func TestTagKeyTakesEveryAcceptValue(t *testing.T) {
	twoLines := http.Header{"Accept": {manifestType, indexType}}
	oneLine := http.Header{"Accept": {manifestType}}
	for _, tc := range []struct {
		name          string
		first, second http.Header
		want          [2][]byte
	}{
		{"two lines first", twoLines, oneLine, [2][]byte{indexBody, manifestBody}},
		{"one line first", oneLine, twoLines, [2][]byte{manifestBody, indexBody}},
	} {
		for _, h := range hopHosts[:2] {
			t.Run(tc.name+"/"+h.name, func(t *testing.T) {
				up := relaytest.NewRecorder(t, negotiate)
				relay, _ := startRelay(t, cacheEnv(t, up.URL, t.TempDir()))
				path := "/v2/library/multi/manifests/latest" + h.query
				for i, hdr := range []http.Header{tc.first, tc.second, tc.first, tc.second} {
					resp := callWithin(t, relay, http.MethodGet, h.host, path, hdr, nil)
					body := readAll(t, resp)
					if want := tc.want[i%2]; resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
						t.Errorf("request %d with Accept %q (X-Relay-Cache %q): got %d %q, want %q",
							i, hdr.Values("Accept"), resp.Header.Get("X-Relay-Cache"), resp.StatusCode, body, want)
					}
					if got := resp.Header.Get("X-Relay-Cache"); i >= 2 && got != "hit" {
						t.Errorf("request %d: X-Relay-Cache %q, want hit (is the tag cache in play?)", i, got)
					}
				}
			})
		}
	}
}
