package app_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
)

// running is an app serving on loopback listeners.
type running struct {
	mainAddr, adminAddr string
	stop                context.CancelFunc
	served              chan error
}

// startApp serves a relay configured by environ and waits until it is ready.
func startApp(t *testing.T, environ map[string]string) *running {
	t.Helper()
	if _, set := environ["RELAY_SHUTDOWN_DELAY"]; !set {
		environ["RELAY_SHUTDOWN_DELAY"] = "0s"
	}
	cfg, err := config.Load(environ)
	if err != nil {
		t.Fatal(err)
	}
	a, err := app.New(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	mainLn, adminLn := listen(t), listen(t)
	ctx, stop := context.WithCancel(context.Background())
	r := &running{mainAddr: mainLn.Addr().String(), adminAddr: adminLn.Addr().String(), stop: stop, served: make(chan error, 1)}
	go func() { r.served <- a.ServeListeners(ctx, mainLn, adminLn) }()
	waitStatus(t, "http://"+r.adminAddr+"/readyz", http.StatusOK)
	return r
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// TestShutdownDrainsInFlightTransfers sends SIGTERM's equivalent while a
// slow blob is streaming: readiness must fail at once, new connections must
// be refused, and the transfer must still complete.
func TestShutdownDrainsInFlightTransfers(t *testing.T) {
	const chunks = 10
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		for range chunks {
			_, _ = w.Write([]byte(strings.Repeat("x", 100/chunks)))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	}))
	defer upstream.Close()

	r := startApp(t, map[string]string{
		"RELAY_BASE_DOMAIN": "test", "DOCKERHUB_UPSTREAM": upstream.URL, "RELAY_SHUTDOWN_GRACE": "10s",
	})
	relayURL, adminURL := "http://"+r.mainAddr, "http://"+r.adminAddr

	req, _ := http.NewRequest("GET", relayURL+"/v2/x/blobs/sha256:"+strings.Repeat("a", 64), nil)
	req.Host = "dhcr.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r.stop()
	waitStatus(t, adminURL+"/readyz", http.StatusServiceUnavailable)
	if c, err := net.DialTimeout("tcp", r.mainAddr, time.Second); err == nil {
		c.Close()
		t.Error("relay accepted a new connection while draining")
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(body) != 100 {
		t.Fatalf("in-flight transfer cut short: %d bytes, %v", len(body), err)
	}
	select {
	case err := <-r.served:
		if err != nil {
			t.Fatalf("ServeListeners: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("relay did not exit after draining")
	}
}

func waitStatus(t *testing.T, url string, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %d", url, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShutdownDelayKeepsServing checks the window between /readyz failing
// and the listener closing, in which load balancers catch up.
func TestShutdownDelayKeepsServing(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	r := startApp(t, map[string]string{
		"RELAY_BASE_DOMAIN": "test", "DOCKERHUB_UPSTREAM": upstream.URL, "RELAY_SHUTDOWN_DELAY": "1s",
	})
	r.stop()
	waitStatus(t, "http://"+r.adminAddr+"/readyz", http.StatusServiceUnavailable)
	req, _ := http.NewRequest("GET", "http://"+r.mainAddr+"/v2/", nil)
	req.Host = "dhcr.test"
	req.Close = true // a new connection, not one kept alive from before
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("request during the shutdown delay: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status %d during the shutdown delay", resp.StatusCode)
	}
	if err := <-r.served; err != nil {
		t.Fatal(err)
	}
}
