package relay

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/registry-relay/registry-relay/internal/httpbody"
	"github.com/registry-relay/registry-relay/internal/oci"
)

// Every body an upstream sends has a bound but a blob's, whose size its
// digest and the client's own limits govern.
const (
	// maxManifestBytes bounds a manifest, as distribution bounds the
	// manifests it accepts (4 MiB): a manifest is JSON a client parses
	// whole, and one that never ends would otherwise be streamed, and
	// buffered for the cache, for as long as the upstream sends.
	maxManifestBytes = 4 << 20
	// maxListBytes bounds the other successful answers: tag lists,
	// referrers, catalog pages, the ping (a tag list of thousands of tags
	// is a few hundred KiB).
	maxListBytes = 16 << 20
)

// boundBody applies the bound of the answer's kind before its headers
// reach the client.
func boundBody(resp *http.Response, kind oci.Kind) {
	switch {
	case resp.Request.Method == http.MethodHead:
		if kind == oci.KindManifest {
			boundManifest(resp) // a declared length over the bound is refused here too
		}
	case resp.StatusCode >= 400:
		boundError(resp, kind)
	case kind == oci.KindManifest:
		boundManifest(resp)
	case kind != oci.KindBlob:
		boundList(resp)
	}
}

// boundError reads an error body whole, up to httpbody.MaxError; a longer
// one is replaced by the relay's own error with the same status.
func boundError(resp *http.Response, kind oci.Kind) {
	body, err := httpbody.Read(resp.Body, httpbody.MaxError)
	if err != nil {
		replaceError(resp, kind, "upstream answered "+strconv.Itoa(resp.StatusCode)+" "+http.StatusText(resp.StatusCode)+
			" with an unreadable or oversized body")
		return
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// boundList refuses a declared length over maxListBytes and cuts a body
// of unknown length that passes it (the client sees a failed read, never
// a truncated list presented as whole).
func boundList(resp *http.Response) {
	if resp.ContentLength > maxListBytes {
		replaceAnswer(resp, oci.BadGateway(oci.CodeUnavailable,
			fmt.Sprintf("upstream answer is over the %d MiB limit (%d bytes)", maxListBytes>>20, resp.ContentLength)))
		return
	}
	if resp.ContentLength < 0 {
		resp.Body = &boundedBody{ReadCloser: resp.Body, left: maxListBytes}
	}
}

// errBodyTooLarge fails the read that passes a body's bound.
var errBodyTooLarge = errors.New("upstream body over its bound")

type boundedBody struct {
	io.ReadCloser
	left int64
}

func (b *boundedBody) Read(p []byte) (int, error) {
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1]
	}
	n, err := b.ReadCloser.Read(p)
	if b.left -= int64(n); b.left < 0 {
		return 0, errBodyTooLarge
	}
	return n, err
}

// boundManifest enforces maxManifestBytes on a successful manifest answer
// before its headers reach the client, so that the client gets a clear
// error rather than a cut connection: a declared length over the bound is
// refused at once, and a body of unknown length is read (up to the bound)
// before it is relayed.
func boundManifest(resp *http.Response) {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return
	}
	if resp.ContentLength > maxManifestBytes {
		refuseManifest(resp, fmt.Sprintf("%d bytes", resp.ContentLength))
		return
	}
	if resp.ContentLength >= 0 || resp.Request.Method == http.MethodHead {
		return // the transport stops reading at the declared length
	}
	body, err := httpbody.Read(resp.Body, maxManifestBytes)
	switch {
	case errors.Is(err, httpbody.ErrTooLarge):
		refuseManifest(resp, "more than that")
	case err != nil:
		replaceAnswer(resp, oci.BadGateway(oci.CodeUnavailable, "upstream manifest transfer failed: "+err.Error()))
	default:
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
}

func refuseManifest(resp *http.Response, size string) {
	replaceAnswer(resp, oci.BadGateway(oci.CodeManifestInvalid,
		fmt.Sprintf("upstream manifest is over the %d MiB limit (%s)", maxManifestBytes>>20, size)))
}

// replaceAnswer replaces the answer with e, keeping nothing of the
// upstream's headers: they described the refused body.
func replaceAnswer(resp *http.Response, e *oci.Error) {
	discard(resp)
	resp.StatusCode, resp.Status = e.Status, strconv.Itoa(e.Status)+" "+http.StatusText(e.Status)
	resp.Header = http.Header{}
	setBody(resp, e.Body(), "application/json; charset=utf-8")
}
