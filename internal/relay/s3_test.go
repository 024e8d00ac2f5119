//go:build s3

package relay_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/relaytest"
)

// s3Env points a relay at the shared store: its settings in env, its
// credentials in the process environment, where the AWS chain reads them.
func s3Env(t *testing.T, srv *relaytest.S3, env map[string]string) map[string]string {
	t.Helper()
	for k, v := range srv.Env() {
		if strings.HasPrefix(k, "AWS_") {
			t.Setenv(k, v)
		} else {
			env[k] = v
		}
	}
	return env
}

// TestSharedCacheServesAnotherReplica: what one relay filled into the
// shared store is served by another (a new replica after a rollout, or a
// second one behind the ingress) without touching the upstream, with and
// without a local disk tier in front.
func TestSharedCacheServesAnotherReplica(t *testing.T) {
	srv := relaytest.StartS3(t, "relay-fleet")
	for _, tier := range []string{"s3 only", "disk in front"} {
		t.Run(tier, func(t *testing.T) {
			up := newBlobUpstream(t, 2<<20, 64<<10, 0)
			env := func() map[string]string {
				e := s3Env(t, srv, hubEnv(up.srv.URL))
				if tier == "disk in front" {
					e["RELAY_CACHE_DIR"] = t.TempDir()
				}
				return e
			}
			first, _ := startRelay(t, env())
			if got, err := getBlob(first, up.digest, nil); err != nil || got != up.digest {
				t.Fatalf("first replica: %s %v", got, err)
			}
			second, _ := startRelay(t, env())
			var c string
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
				_, c, _ = fetchVia(t, second, hubHost, "/v2/library/x/blobs/"+up.digest, "")
				if c == "hit" || time.Now().After(deadline) {
					break
				}
			}
			if c != "hit" {
				t.Fatalf("the second replica did not find the blob in the shared store (cache %q)", c)
			}
			if n := up.gets.Load(); n != 1 {
				t.Errorf("the upstream served %d GETs for two replicas, want 1", n)
			}
		})
	}
}

// TestSharedCacheDownStepsAside: with the store stopped, pulls still get
// the right bytes from the upstream, every time.
func TestSharedCacheDownStepsAside(t *testing.T) {
	srv := relaytest.StartS3(t, "relay-down")
	up := newBlobUpstream(t, 1<<20, 64<<10, 0)
	relay, _ := startRelay(t, s3Env(t, srv, hubEnv(up.srv.URL)))
	srv.Stop()
	for i := range 3 {
		status, _, body := fetchVia(t, relay, hubHost, "/v2/library/x/blobs/"+up.digest, "")
		if status != http.StatusOK || len(body) != 1<<20 {
			t.Fatalf("pull %d with the store down: %d, %d bytes", i, status, len(body))
		}
		if got, err := getBlob(relay, up.digest, nil); err != nil || got != up.digest {
			t.Fatalf("pull %d with the store down: %s %v", i, got, err)
		}
	}
}
