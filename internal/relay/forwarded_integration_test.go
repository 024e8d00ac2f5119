package relay_test

import (
	"fmt"
	"net/http"
	"testing"
)

// TestForwardedForTrust: X-Forwarded-For decides the client address for
// <NAME>_ALLOW_CIDRS and the per-client limits only when the peer is a
// trusted proxy. The relay's peer here is 127.0.0.1.
func TestForwardedForTrust(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	for _, tc := range []struct {
		name    string
		trusted string
		xff     string
		want    int
	}{
		{"no proxies trusted", "", "192.0.2.7", http.StatusForbidden},
		{"another proxy range trusted", "10.0.0.0/8", "192.0.2.7", http.StatusForbidden},
		{"IPv6 proxy range trusted", "fd00::/8", "192.0.2.7", http.StatusForbidden},
		{"peer trusted", "127.0.0.1/32", "192.0.2.7", http.StatusOK},
		{"peer trusted, client outside the list", "127.0.0.1/32", "198.51.100.1", http.StatusForbidden},
		{"peer trusted, spoofed left entry", "127.0.0.1/32", "192.0.2.7, 198.51.100.1", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			env := hubEnv(up.URL)
			env["DOCKERHUB_ALLOW_CIDRS"] = "192.0.2.0/24"
			env["RELAY_TRUSTED_PROXIES"] = tc.trusted
			relay, _ := startRelay(t, env)
			resp := send(ctx, t, relay, hubHost, "/v2/", http.Header{"X-Forwarded-For": {tc.xff}})
			readAll(t, resp)
			if resp.StatusCode != tc.want {
				t.Errorf("X-Forwarded-For %q: %d, want %d", tc.xff, resp.StatusCode, tc.want)
			}
		})
	}
}

// TestForwardedForLimits: a client behind an untrusted peer cannot get
// fresh rate budgets by varying X-Forwarded-For; behind a trusted proxy
// each forwarded client has its own, and an IPv6 /64 is one client.
func TestForwardedForLimits(t *testing.T) {
	up, _ := fakeUpstream(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	// A budget of 2 that refills once per 100 s: no refill during the test.
	const burst = 2
	for _, tc := range []struct {
		name     string
		trusted  string
		xff      func(i int) string
		refusals int // of 5 requests
	}{
		{"untrusted peer, rotating header", "10.0.0.0/8", func(i int) string { return fmt.Sprintf("192.0.2.%d", i+1) }, 3},
		{"trusted peer, distinct clients", "127.0.0.1/32", func(i int) string { return fmt.Sprintf("192.0.2.%d", i+1) }, 0},
		{"trusted peer, one client", "127.0.0.1/32", func(int) string { return "192.0.2.9" }, 3},
		{"trusted peer, one IPv6 /64", "127.0.0.1/32", func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) }, 3},
		{"trusted peer, distinct /64s", "127.0.0.1/32", func(i int) string { return fmt.Sprintf("2001:db8:1:%x::1", i+1) }, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testContext(t)
			env := hubEnv(up.URL)
			env["RELAY_RATE_LIMIT"] = "0.01"
			env["RELAY_RATE_BURST"] = fmt.Sprint(burst)
			env["RELAY_TRUSTED_PROXIES"] = tc.trusted
			relay, _ := startRelay(t, env)
			refused := 0
			for i := range 5 {
				resp := send(ctx, t, relay, hubHost, "/v2/", http.Header{"X-Forwarded-For": {tc.xff(i)}})
				readAll(t, resp)
				if resp.StatusCode == http.StatusTooManyRequests {
					refused++
				}
			}
			if refused != tc.refusals {
				t.Errorf("%d of 5 requests refused, want %d", refused, tc.refusals)
			}
		})
	}
}
