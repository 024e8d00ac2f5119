package relay_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
	"github.com/registry-relay/registry-relay/internal/peers"
)

// startFleet serves n replicas of one relay, each knowing the others
// through RELAY_PEERS, on loopback; env is each one's, RELAY_CACHE_DIR
// aside (a directory each).
func startFleet(t *testing.T, n int, env map[string]string) []*httptest.Server {
	t.Helper()
	secret := filepath.Join(t.TempDir(), "peer-secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 40)), 0o600); err != nil {
		t.Fatal(err)
	}
	lns := make([]net.Listener, n)
	urls := make([]string, n)
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i], urls[i] = ln, "http://"+ln.Addr().String()
	}
	servers := make([]*httptest.Server, n)
	for i := range servers {
		e := map[string]string{"RELAY_PEERS": strings.Join(urls, ","), "RELAY_PEER_SELF": urls[i],
			"RELAY_PEER_SECRET_FILE": secret, "RELAY_CACHE_DIR": t.TempDir()}
		for k, v := range env {
			e[k] = v
		}
		cfg, err := config.Load(e)
		if err != nil {
			t.Fatal(err)
		}
		a, err := app.New(cfg, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		srv := &httptest.Server{Listener: lns[i], Config: &http.Server{Handler: a.Handler()}}
		srv.Start()
		t.Cleanup(func() {
			srv.Close()
			a.CloseIdleConnections()
		})
		servers[i] = srv
	}
	return servers
}

// TestFleetFetchesABlobOnce: concurrent cold pulls of one blob spread over
// three replicas make one upstream GET in all; every client gets the
// verified bytes, those on the other replicas through the owner's fill.
func TestFleetFetchesABlobOnce(t *testing.T) {
	up := newBlobUpstream(t, 8<<20, 64<<10, 2*time.Millisecond)
	fleet := startFleet(t, 3, hubEnv(up.srv.URL))
	var wg sync.WaitGroup
	var peer atomic.Int32
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, c, body := fetchVia(t, fleet[i%3], hubHost, "/v2/library/x/blobs/"+up.digest, "")
			if got := digestOf(body); got != up.digest {
				errs <- fmt.Errorf("client %d: %d bytes hashing to %s", i, len(body), got)
			}
			if c == "peer" {
				peer.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := up.gets.Load(); n != 1 {
		t.Errorf("the upstream served %d GETs for 30 pulls over 3 replicas, want 1", n)
	}
	if peer.Load() == 0 {
		t.Error("no pull was served through the blob's owner")
	}
}

// TestFleetSurvivesItsOwner: with the owner of a blob gone, another
// replica fills it itself: a peer's failure costs a fetch, not a pull.
func TestFleetSurvivesItsOwner(t *testing.T) {
	up := newBlobUpstream(t, 1<<20, 64<<10, 0)
	fleet := startFleet(t, 3, hubEnv(up.srv.URL))
	urls := make([]string, len(fleet))
	for i, srv := range fleet {
		urls[i] = srv.URL
	}
	ring, err := peers.New(urls, urls[0], []byte(strings.Repeat("s", 40)), nil)
	if err != nil {
		t.Fatal(err)
	}
	owner, _ := ring.Owner("dockerhub\x00" + up.digest)
	var asked *httptest.Server
	for _, srv := range fleet {
		if srv.URL == owner.String() {
			srv.Close()
		} else {
			asked = srv
		}
	}
	status, c, body := fetchVia(t, asked, hubHost, "/v2/library/x/blobs/"+up.digest, "")
	if status != http.StatusOK || digestOf(body) != up.digest || c != "miss" {
		t.Fatalf("with the owner down: %d, cache %q, %d bytes; want a local fill", status, c, len(body))
	}
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// TestForgedPeerProofBypassesNothing: only a request signed with the
// fleet's secret skips the client checks; a forged or replayed-elsewhere
// proof is an ordinary request, refused by the route's client list, and
// the header never reaches an upstream.
func TestForgedPeerProofBypassesNothing(t *testing.T) {
	up, last := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {})
	env := hubEnv(up.URL)
	env["DOCKERHUB_ALLOW_CIDRS"] = "192.0.2.0/24"
	fleet := startFleet(t, 2, env)
	for _, proof := range []string{"nonsense", fmt.Sprintf("%d:%s", time.Now().Unix(), strings.Repeat("0", 64))} {
		resp := call(t, fleet[0], http.MethodGet, hubHost, "/v2/library/x/manifests/latest", http.Header{"X-Relay-Peer": {proof}})
		wantOCIError(t, resp, http.StatusForbidden, "DENIED")
	}
	open := startFleet(t, 2, hubEnv(up.URL))
	readAll(t, call(t, open[0], http.MethodGet, hubHost, "/v2/library/x/manifests/latest", http.Header{"X-Relay-Peer": {"nonsense"}}))
	if got := last.Load(); got == nil || got.Header.Get("X-Relay-Peer") != "" {
		t.Fatalf("the upstream saw %v", got)
	}
}

// TestFleetResumesWhenTheOwnerDies: the owner of a blob is cut off
// half-way through a pull forwarded to it; the forwarding replica takes
// the rest from the upstream by Range, and its client gets the whole,
// verified blob, for well under twice the upstream bytes.
func TestFleetResumesWhenTheOwnerDies(t *testing.T) {
	const size = 4 << 20
	up := newBlobUpstream(t, size, 64<<10, 5*time.Millisecond)
	fleet := startFleet(t, 2, hubEnv(up.srv.URL))
	ring, err := peers.New([]string{fleet[0].URL, fleet[1].URL}, fleet[0].URL, []byte(strings.Repeat("s", 40)), nil)
	if err != nil {
		t.Fatal(err)
	}
	owner, other := fleet[0], fleet[1]
	if o, _ := ring.Owner("dockerhub\x00" + up.digest); o.String() == fleet[1].URL {
		owner, other = fleet[1], fleet[0]
	}
	half := make(chan struct{})
	done := make(chan string, 1)
	go func() {
		got, err := getBlobAfter(other, up.digest, size/2, func() { close(half) })
		if err != nil {
			got = err.Error()
		}
		done <- got
	}()
	select {
	case <-half:
	case <-time.After(20 * time.Second):
		t.Fatal("the pull never got half-way")
	}
	owner.CloseClientConnections()
	select {
	case got := <-done:
		if got != up.digest {
			t.Fatalf("with the owner cut off half-way: %s", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pull did not finish")
	}
	if sent := up.sent.Load(); sent > size*3/2 {
		t.Errorf("the upstream sent %d bytes for a %d-byte blob (over 1.5x)", sent, size)
	}
}
