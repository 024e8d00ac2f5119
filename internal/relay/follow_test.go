package relay

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/registry"
)

// hops is a RoundTripper that answers each URL from a table and records
// the Authorization header each request carried.
type hops struct {
	answers map[string]string // URL -> Location ("" answers 200)
	auth    map[string]string
}

func (h *hops) RoundTrip(req *http.Request) (*http.Response, error) {
	h.auth[req.URL.String()] = req.Header.Get("Authorization")
	resp := &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: req}
	if loc, ok := h.answers[req.URL.String()]; ok && loc != "" {
		resp.StatusCode = http.StatusTemporaryRedirect
		resp.Header.Set("Location", loc)
	}
	return resp, nil
}

func TestRedirectFollower(t *testing.T) {
	quay := &registry.Route{Name: "quay", Upstream: &url.URL{Scheme: "https", Host: "quay.io"}}
	lscr := &registry.Route{Name: "lscr", Upstream: &url.URL{Scheme: "https", Host: "lscr.io"}, CredentialHosts: []string{"ghcr.io"}}
	for _, tc := range []struct {
		name     string
		route    *registry.Route
		answers  map[string]string
		wantErr  string
		wantAuth map[string]string // URL -> Authorization it must have received
	}{
		{"CDN subdomain gets no token", quay, map[string]string{
			"https://quay.io/v2/x/blobs/d": "https://cdn01.quay.io/blob?sig=1",
		}, "", map[string]string{"https://quay.io/v2/x/blobs/d": "Bearer t", "https://cdn01.quay.io/blob?sig=1": ""}},
		{"relative same-host hop keeps it", quay, map[string]string{
			"https://quay.io/v2/x/blobs/d": "/storage/d",
		}, "", map[string]string{"https://quay.io/storage/d": "Bearer t"}},
		{"credential host keeps it", lscr, map[string]string{
			"https://lscr.io/v2/x/blobs/d": "https://ghcr.io/v2/x/blobs/d",
			"https://ghcr.io/v2/x/blobs/d": "https://pkg-containers.githubusercontent.com/b?sig=1",
		}, "", map[string]string{"https://ghcr.io/v2/x/blobs/d": "Bearer t", "https://pkg-containers.githubusercontent.com/b?sig=1": ""}},
		{"https to http refused", quay, map[string]string{
			"https://quay.io/v2/x/blobs/d": "http://cdn01.quay.io/blob",
		}, "plain http", nil},
		{"loop refused", quay, map[string]string{
			"https://quay.io/v2/x/blobs/d": "https://quay.io/v2/x/blobs/d",
		}, "more than 3 redirects", nil},
		{"non-http scheme refused", quay, map[string]string{
			"https://quay.io/v2/x/blobs/d": "gopher://quay.io/x",
		}, "not http(s)", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &hops{answers: tc.answers, auth: map[string]string{}}
			f := newRedirectFollower(tc.route, testGuard(h, h), 3, false)
			ctx := context.Background()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.route.Upstream.String()+"/v2/x/blobs/d", nil)
			req.Header.Set("Authorization", "Bearer t")
			resp, err := f.RoundTrip(req)
			var re *redirectError
			switch {
			case tc.wantErr != "":
				if !errors.As(err, &re) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want a redirectError with %q", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			case resp.StatusCode != http.StatusOK:
				t.Fatalf("final status %d", resp.StatusCode)
			}
			for u, want := range tc.wantAuth {
				if got, seen := h.auth[u]; !seen || got != want {
					t.Errorf("%s got Authorization %q (requested: %v), want %q", u, got, seen, want)
				}
			}
		})
	}
}
