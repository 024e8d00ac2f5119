//go:build e2e

package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
)

// newFront splits traffic between the relay (reads) and the upstream
// (writes and upload sessions), keeping the client's Host on both.
func newFront(relay, upstream *url.URL, libraryPatch bool, logger *log.Logger) http.Handler {
	var n atomic.Int64
	proxy := func(target *url.URL, leg string) *httputil.ReverseProxy {
		return &httputil.ReverseProxy{
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.SetURL(target)
				pr.Out.Host = pr.In.Host
				if leg == "upstream" && libraryPatch {
					pr.Out.URL.Path, pr.Out.URL.RawPath = patchLibrary(pr.Out.URL.Path), ""
					// a cross-repository mount names its source in ?from=
					if q := pr.Out.URL.Query(); q.Get("from") != "" && !strings.Contains(q.Get("from"), "/") {
						q.Set("from", "library/"+q.Get("from"))
						pr.Out.URL.RawQuery = q.Encode()
					}
				}
			},
			ModifyResponse: func(resp *http.Response) error {
				logger.Printf("#%d %-8s %s %s -> %d", n.Add(1), leg, resp.Request.Method, resp.Request.URL.RequestURI(), resp.StatusCode)
				return nil
			},
		}
	}
	toRelay, toUpstream := proxy(relay, "relay"), proxy(upstream, "upstream")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodGet || r.Method == http.MethodHead) && !strings.Contains(r.URL.Path, "/blobs/uploads/") {
			toRelay.ServeHTTP(w, r)
			return
		}
		toUpstream.ServeHTTP(w, r)
	})
}

// patchLibrary mirrors the relay's Docker Hub patch for the write leg:
// /v2/<one-segment>/… becomes /v2/library/<one-segment>/….
func patchLibrary(p string) string {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return p
	}
	for _, kw := range []string{"/blobs/", "/manifests/", "/tags/", "/referrers/"} {
		if i := strings.Index(rest, kw); i > 0 {
			if strings.Contains(rest[:i], "/") {
				return p
			}
			return "/v2/library/" + rest
		}
	}
	return p
}
