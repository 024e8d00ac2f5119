package app_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSlowlorisCutByReadHeaderTimeout: a client that trickles its request
// headers a byte at a time must be cut off by the server's
// ReadHeaderTimeout (RELAY_READ_HEADER_TIMEOUT, 3 s here), while other
// clients are served.
func TestSlowlorisCutByReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	r := startApp(t, map[string]string{"RELAY_BASE_DOMAIN": "test", "DOCKERHUB_UPSTREAM": upstream.URL, "RELAY_READ_HEADER_TIMEOUT": "3s"})
	defer func() {
		r.stop()
		<-r.served
	}()

	c, err := net.Dial("tcp", r.mainAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	cut := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, c) // returns when the server closes
		cut <- time.Since(start)
	}()
	head := "GET /v2/ HTTP/1.1\r\nHost: dhcr.test\r\nX-Slow: "
	ticker := time.NewTicker(250 * time.Millisecond)
	defer ticker.Stop()
	served := false
	for i := 0; ; i++ {
		select {
		case d := <-cut:
			if d < 2900*time.Millisecond || d > 8*time.Second {
				t.Fatalf("slow client cut after %s, want ~3s", d)
			}
			if !served {
				t.Error("no other request was served while the slow client held its connection")
			}
			return
		case <-ticker.C:
		}
		b := byte('a')
		if i < len(head) {
			b = head[i]
		}
		_, _ = c.Write([]byte{b})
		if !served && time.Since(start) > time.Second {
			req, _ := http.NewRequest("GET", "http://"+r.mainAddr+"/v2/", nil)
			req.Host = "dhcr.test"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("relay stopped serving during the slow client: %v", err)
			}
			resp.Body.Close()
			served = true
		}
		if time.Since(start) > 15*time.Second {
			t.Fatal("slow client never cut off")
		}
	}
}

// TestShutdownDrainsHundredPulls is SIGTERM with 100 blob pulls in
// flight: /readyz fails at once, new connections are still accepted for
// RELAY_SHUTDOWN_DELAY and refused after it, and every pull completes.
func TestShutdownDrainsHundredPulls(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 100 slow blobs")
	}
	t.Parallel()
	const (
		pulls  = 100
		chunks = 25
		chunk  = 1000
		delay  = time.Second
	)
	var started sync.WaitGroup
	started.Add(pulls)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "25000")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for range chunks {
			_, _ = w.Write([]byte(strings.Repeat("x", chunk)))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond) // 2.5 s a pull: past the delay
		}
	}))
	defer upstream.Close()
	r := startApp(t, map[string]string{
		"RELAY_BASE_DOMAIN": "test", "DOCKERHUB_UPSTREAM": upstream.URL,
		"RELAY_SHUTDOWN_DELAY": delay.String(), "RELAY_SHUTDOWN_GRACE": "20s",
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: pulls}}
	defer client.CloseIdleConnections()

	errs := make(chan error, pulls)
	for i := range pulls {
		go func() {
			req, _ := http.NewRequest("GET", "http://"+r.mainAddr+"/v2/x/blobs/sha256:"+strings.Repeat("a", 64), nil)
			req.Host = "dhcr.test"
			resp, err := client.Do(req)
			started.Done()
			if err != nil {
				errs <- err
				return
			}
			n, err := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if err == nil && n != chunks*chunk {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				err = fmt.Errorf("pull %d: %d bytes: %w", i, n, err)
			}
			errs <- err
		}()
	}
	started.Wait()
	stopped := time.Now()
	r.stop()
	waitStatus(t, "http://"+r.adminAddr+"/readyz", http.StatusServiceUnavailable)
	if d := time.Since(stopped); d >= delay {
		t.Errorf("/readyz failed only after %s", d)
	}
	refusedAfter := waitRefused(t, r.mainAddr)
	if d := refusedAfter.Sub(stopped); d < delay-100*time.Millisecond {
		t.Errorf("new connections refused %s after the stop, before the %s delay", d, delay)
	}
	for range pulls {
		if err := <-errs; err != nil {
			t.Errorf("in-flight pull failed: %v", err)
		}
	}
	if err := <-r.served; err != nil {
		t.Fatalf("ServeListeners: %v", err)
	}
	t.Logf("%d pulls drained in %s after the stop", pulls, time.Since(stopped).Round(10*time.Millisecond))
}

// waitRefused dials addr until a connection is refused and returns when.
func waitRefused(t *testing.T, addr string) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return time.Now()
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the relay kept accepting connections")
	return time.Time{}
}
