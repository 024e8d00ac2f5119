//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// htpasswd writes a bcrypt htpasswd file for cred.
func htpasswd(t *testing.T, cred credential) string {
	hash, err := bcrypt.GenerateFromPassword([]byte(cred.password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(cred.user+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// testRelayAccounts logs the client in to the guarded relay with a relay
// account, as its users would (docker login, crane auth login, ...), and
// pulls a public image, a private one (served by the relay's own upstream
// account) and one from an anonymous upstream; logged out, it must be
// refused.
func testRelayAccounts(t *testing.T, w *world, c client) {
	hub, k8s := w.guarded.host(hubDomain), w.guarded.host(k8sDomain)
	for _, tc := range []struct {
		name, ref string
		want      string
	}{
		{"relay account: public image", hub + "/library/alpine:latest", w.img.list.String()},
		{"relay account: private image via the relay's upstream account", hub + "/private/secret:1.0", w.img.private.String()},
		{"relay account: anonymous upstream", k8s + "/pause:3.10", w.img.pause.String()},
		{"relay account: logged out is refused", hub + "/library/alpine:latest", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := pullAccount(t, c, tc.ref, tc.want)
			if err != nil {
				record(c.name(), tc.name, "FAIL", err.Error())
				t.Error(err)
				return
			}
			record(c.name(), tc.name, "PASS", time.Since(start).Round(time.Millisecond).String())
		})
	}
}

func pullAccount(t *testing.T, c client, ref, want string) error {
	ctx := context.Background()
	host, _, _ := strings.Cut(ref, "/")
	defer c.forget(ctx, ref)
	if want == "" {
		res, out, err := c.pull(ctx, t, ref)
		if err == nil {
			return failure("pull without a relay login succeeded", nil, res.digest)
		}
		_, err = deniedAsExpected(err, out)
		return err
	}
	if out, err := c.login(ctx, host, relayUser); err != nil {
		return failure("login", err, out)
	}
	defer c.logout(ctx, host)
	res, out, err := c.pull(ctx, t, ref)
	switch {
	case err != nil:
		return failure("pull", err, out)
	case res.digest != want:
		return failure("digest", nil, "pulled "+res.digest+", pushed "+want)
	}
	return nil
}
