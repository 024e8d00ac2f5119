package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// probeVariant starts a relay variant and checks that it really has the
// feature its settings ask for: it must start, serve a blob, and then show
// v.needsMetric on /metrics. The reason is "" when the variant is usable.
func (s *stack) probeVariant(ctx context.Context, c *http.Client, v relayVariant, upstream, tokenUpstream string, b blob) (*target, string) {
	t, err := s.startRelay(ctx, v.name, upstream, tokenUpstream, v.env)
	if err != nil {
		return nil, fmt.Sprintf("the relay rejected %s: %v", envNames(v.env), firstLine(err))
	}
	if v.needsMetric == "" {
		return t, ""
	}
	if err := getBlob(ctx, c, t, bigRepo, b, true); err != nil {
		t.proc.stop()
		return nil, fmt.Sprintf("blob GET failed: %v", err)
	}
	has, err := hasMetric(ctx, c, t.admin, v.needsMetric)
	if err != nil || !has {
		t.proc.stop()
		return nil, fmt.Sprintf("the relay ignores %s (no %s on /metrics)", envNames(v.env), v.needsMetric)
	}
	return t, ""
}

func hasMetric(ctx context.Context, c *http.Client, admin, name string) (bool, error) {
	req, err := newRequest(ctx, http.MethodGet, admin+"/metrics", "")
	if err != nil {
		return false, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return false, err
	}
	return strings.Contains(string(body), "\n"+name), nil
}

func envNames(env map[string]string) string {
	var names []string
	for k := range env {
		names = append(names, k)
	}
	return strings.Join(names, ", ")
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

// countingProxy sits between a caching relay and the registry and counts
// the blob GETs that reach the registry.
type countingProxy struct {
	url      string
	blobGETs atomic.Int64
	srv      *http.Server
}

func startCountingProxy(upstream string) (*countingProxy, error) {
	u, err := url.Parse(upstream)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	cp := &countingProxy{url: "http://" + ln.Addr().String()}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
		FlushInterval: -1,
	}
	cp.srv = &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				cp.blobGETs.Add(1)
			}
			rp.ServeHTTP(w, r)
		}),
	}
	go func() { _ = cp.srv.Serve(ln) }()
	return cp, nil
}

func (cp *countingProxy) close() { _ = cp.srv.Close() }

// coldPulls has pulls clients fetch one uncached blob through t at once,
// each verifying the digest, and returns how many blob GETs the registry
// behind cp received for them.
func coldPulls(ctx context.Context, t *target, cp *countingProxy, b blob, pulls int) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	c := newClient(pulls)
	defer c.CloseIdleConnections()
	before := cp.blobGETs.Load()
	errs := make([]error, pulls)
	var wg sync.WaitGroup
	for i := range pulls {
		wg.Go(func() { errs[i] = getBlob(ctx, c, t, bigRepo, b, true) })
	}
	wg.Wait()
	return cp.blobGETs.Load() - before, errors.Join(errs...)
}
