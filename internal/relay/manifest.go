package relay

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/registry-relay/registry-relay/internal/oci"
)

// maxManifestBytes bounds a manifest relayed from an upstream, as
// distribution bounds the manifests it accepts (4 MiB): a manifest is
// JSON a client parses whole, and one that never ends would otherwise be
// streamed, and buffered for the cache, for as long as the upstream sends.
const maxManifestBytes = 4 << 20

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
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
	switch {
	case err != nil:
		replaceAnswer(resp, oci.NewError(http.StatusBadGateway, oci.CodeUnavailable, "upstream manifest transfer failed: "+err.Error()))
	case len(body) > maxManifestBytes:
		refuseManifest(resp, "more than that")
	default:
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	}
}

func refuseManifest(resp *http.Response, size string) {
	replaceAnswer(resp, oci.NewError(http.StatusBadGateway, oci.CodeManifestInvalid,
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
