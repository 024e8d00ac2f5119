package relay_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// faultUpstream is a raw TCP upstream that misbehaves on purpose; the
// repository name in the request path picks the fault.
type faultUpstream struct {
	ln    net.Listener
	done  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func newFaultUpstream(t *testing.T) *faultUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &faultUpstream{ln: ln, done: make(chan struct{}), conns: map[net.Conn]bool{}}
	u.wg.Add(1)
	go u.accept()
	t.Cleanup(u.close)
	return u
}

func (u *faultUpstream) URL() string { return "http://" + u.ln.Addr().String() }

func (u *faultUpstream) close() {
	close(u.done)
	u.ln.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}

func (u *faultUpstream) accept() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.conns[c] = true
		u.mu.Unlock()
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			u.serve(c)
			u.mu.Lock()
			delete(u.conns, c)
			u.mu.Unlock()
			c.Close()
		}()
	}
}

const faultBlobSize = 100_000

// serve answers requests on one connection until a fault ends it.
func (u *faultUpstream) serve(c net.Conn) {
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		fault := strings.TrimPrefix(req.URL.Path, "/v2/library/")
		fault, _, _ = strings.Cut(fault, "/")
		head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", faultBlobSize)
		part := strings.Repeat("x", 1000)
		switch fault {
		case "reset-headers":
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Ty")
			reset(c)
			return
		case "reset-body":
			_, _ = io.WriteString(c, head+part)
			time.Sleep(20 * time.Millisecond)
			reset(c)
			return
		case "truncated":
			_, _ = io.WriteString(c, head+part)
			return // a clean close, 99 000 bytes short
		case "stall-body":
			_, _ = io.WriteString(c, head+part)
			<-u.done
			return
		case "slow-headers":
			<-u.done
			return
		default:
			_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
		}
	}
}

// reset closes c with an RST instead of a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(entries)
}

// checkNoLeaks registers, before anything else, a cleanup that runs after
// every other one: goroutines and file descriptors back at baseline.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	fds := openFDs(t)
	t.Cleanup(func() {
		goleak.VerifyNone(t, ignore)
		deadline := time.Now().Add(5 * time.Second)
		for openFDs(t) > fds+2 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if now := openFDs(t); now > fds+2 {
			t.Errorf("file descriptors: %d before, %d after", fds, now)
		}
	})
}

// TestUpstreamFaults injects each fault and checks that the client always
// sees an error — a 502/504 with an OCI body while no header was sent, a
// failed body read after — and that the relay keeps serving in between.
func TestUpstreamFaults(t *testing.T) {
	checkNoLeaks(t)
	idle := "300ms"
	up := newFaultUpstream(t)
	env := hubEnv(up.URL())
	env["RELAY_UPSTREAM_HEADER_TIMEOUT"] = "500ms"
	env["RELAY_UPSTREAM_IDLE_TIMEOUT"] = idle
	srv, _ := startRelay(t, env)

	healthy := func(t *testing.T) {
		t.Helper()
		resp := call(t, srv, "GET", hubHost, "/v2/ok/manifests/latest", nil)
		if body := readAll(t, resp); resp.StatusCode != 200 || string(body) != "{}" {
			t.Fatalf("relay stopped serving: %d %q", resp.StatusCode, body)
		}
	}
	blob := "/blobs/sha256:" + strings.Repeat("f", 64)
	for _, tc := range []struct {
		fault  string
		status int // 0: headers were sent, the body read must fail
		within time.Duration
	}{
		{"reset-headers", http.StatusBadGateway, 5 * time.Second},
		{"slow-headers", http.StatusGatewayTimeout, 5 * time.Second},
		{"reset-body", 0, 5 * time.Second},
		{"truncated", 0, 5 * time.Second},
		{"stall-body", 0, 5 * time.Second},
	} {
		t.Run(tc.fault, func(t *testing.T) {
			healthy(t)
			start := time.Now()
			resp := call(t, srv, "GET", hubHost, "/v2/"+tc.fault+blob, nil)
			if tc.status != 0 {
				wantOCIError(t, resp, tc.status, "UNAVAILABLE")
			} else {
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || err == nil {
					t.Fatalf("status %d, read %d bytes, err %v: a cut transfer must fail the read", resp.StatusCode, n, err)
				}
				if n >= faultBlobSize {
					t.Fatalf("read %d bytes", n)
				}
			}
			if d := time.Since(start); d > tc.within {
				t.Errorf("the client waited %s", d)
			}
			healthy(t)
		})
	}
}

// TestStalledBodyTimesOutAfterIdle checks the timing of the idle timeout:
// not before it, not long after.
func TestStalledBodyTimesOutAfterIdle(t *testing.T) {
	idle := "400ms"
	up := newFaultUpstream(t)
	srv, _ := startRelay(t, withIdle(hubEnv(up.URL()), idle))
	resp := call(t, srv, "GET", hubHost, "/v2/stall-body/blobs/sha256:"+strings.Repeat("f", 64), nil)
	start := time.Now()
	_, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(start)
	if err == nil || d < 350*time.Millisecond || d > 3*time.Second {
		t.Fatalf("stalled body: err %v after %s, want an error after ~400ms", err, d)
	}
}

// TestTricklingBodyIsNotIdle: an upstream that is slow but keeps sending
// must not be cut by the idle timeout.
func TestTricklingBodyIsNotIdle(t *testing.T) {
	idle := "300ms"
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		for range 10 {
			_, _ = w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			time.Sleep(100 * time.Millisecond)
		}
	})
	srv, _ := startRelay(t, withIdle(hubEnv(up.URL), idle))
	resp := call(t, srv, "GET", hubHost, "/v2/x/blobs/sha256:"+strings.Repeat("f", 64), nil)
	if body := readAll(t, resp); len(body) != 10 {
		t.Fatalf("trickled body: %q", body)
	}
}

func TestUnreachableAndUntrustedUpstreams(t *testing.T) {
	checkNoLeaks(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + ln.Addr().String()
	ln.Close()
	tlsUp := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request got through a TLS handshake the relay must not trust")
	}))
	tlsUp.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake failures are the point
	tlsUp.StartTLS()
	defer tlsUp.Close()
	for name, upstream := range map[string]string{"connection refused": refused, "untrusted certificate": tlsUp.URL} {
		t.Run(name, func(t *testing.T) {
			srv, a := startRelay(t, hubEnv(upstream))
			wantOCIError(t, call(t, srv, "GET", hubHost, "/v2/x/manifests/latest", nil), http.StatusBadGateway, "UNAVAILABLE")
			srv.Close()
			a.CloseIdleConnections()
		})
	}
}

// TestClientGoneMidStall: a client that gives up on a stalled transfer
// releases the upstream connection at once.
func TestClientGoneMidStall(t *testing.T) {
	checkNoLeaks(t)
	up := newFaultUpstream(t)
	srv, _ := startRelay(t, hubEnv(up.URL()))
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v2/stall-body/blobs/sha256:"+strings.Repeat("f", 64), nil)
	req.Host = hubHost
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := io.Copy(io.Discard, resp.Body); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: %v", err)
	}
	resp.Body.Close()
}

// withIdle sets the upstream body idle timeout of a relay's environment.
func withIdle(env map[string]string, d string) map[string]string {
	env["RELAY_UPSTREAM_IDLE_TIMEOUT"] = d
	return env
}
