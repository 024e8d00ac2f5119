//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// testNegative checks the answers a read-only relay owes to requests it
// must refuse, each as an OCI error, and that nothing reached an upstream
// that should not have.
func testNegative(t *testing.T, w *world) {
	check := func(name string, fn func() (string, error)) {
		t.Run(name, func(t *testing.T) {
			detail, err := fn()
			if err != nil {
				record("negative", name, "FAIL", err.Error())
				t.Error(err)
				return
			}
			record("negative", name, "PASS", detail)
		})
	}
	check("unknown host: 404 NAME_UNKNOWN", func() (string, error) {
		return wantOCI(w.relay.host(unknownDomain), "/v2/", http.StatusNotFound, "NAME_UNKNOWN")
	})
	check("upstream down: 502 UNAVAILABLE", func() (string, error) {
		return wantOCI(w.relay.host(downDomain), "/v2/some/image/manifests/latest", http.StatusBadGateway, "UNAVAILABLE")
	})
	check("crane push: 405, nothing written", func() (string, error) {
		return pushRefused(t, w)
	})
}

func wantOCI(host, path string, status int, code string) (string, error) {
	resp, err := http.Get("http://" + host + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var env struct {
		Errors []struct{ Code, Message string } `json:"errors"`
	}
	if resp.StatusCode != status || json.Unmarshal(body, &env) != nil || len(env.Errors) == 0 || env.Errors[0].Code != code {
		return "", failure("unexpected answer", nil, resp.Status+" "+string(body))
	}
	return resp.Status + " " + env.Errors[0].Message, nil
}

// pushRefused pushes with crane through the relay to a route whose
// upstream accepts anonymous writes, and checks the relay said 405 and the upstream
// still has no such repository.
func pushRefused(t *testing.T, w *world) (string, error) {
	c := &crane{}
	if reason := c.setup(t, w); reason != "" {
		t.Skip(reason)
	}
	ctx := context.Background()
	host := w.relay.host(k8sDomain) // its upstream accepts anonymous writes
	img, err := relaytest.NewRandomImage(1, 1024)
	if err != nil {
		return "", err
	}
	src := t.TempDir() + "/image.tar"
	if err := tarball.WriteToFile(src, name.MustParseReference("pushed:1"), img); err != nil {
		return "", err
	}
	out, err := run(ctx, c.env, "crane", "push", "--insecure", src, host+"/pushed:1")
	if err == nil {
		return "", failure("push through the relay succeeded", nil, out)
	}
	if !strings.Contains(out, "405") && !strings.Contains(out, "UNSUPPORTED") {
		return "", failure("push failed without a 405 UNSUPPORTED", err, out)
	}
	resp, err := http.Get(w.anonURL + "/v2/pushed/tags/list")
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		return "", failure("upstream has the pushed repository", nil, resp.Status)
	}
	return "refused with 405 UNSUPPORTED", nil
}
