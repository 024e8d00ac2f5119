package relaytest

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// realmAlias is the name the client transport shows go-containerregistry
// instead of 127.0.0.1 in token realms; the transport dials it as 127.0.0.1
// itself, so nothing depends on /etc/hosts.
const realmAlias = "localhost"

// ClientTransport returns an http.RoundTripper for go-containerregistry
// clients (remote.WithTransport) that talk to a token-auth Registry directly.
//
// go-containerregistry v0.22 refuses a realm on a loopback or private IP
// unless it is the registry's own host:port (SSRF guard, validateRealmURL in
// pkg/v1/remote/transport/bearer.go), and a TokenIssuer listens on a port of
// its own. The transport therefore rewrites realm="http://127.0.0.1:PORT"
// in WWW-Authenticate challenges to realm="http://localhost:PORT" and dials
// localhost as 127.0.0.1. Everything else, including the token flow the
// issuer records, is unchanged. Idle connections are closed via t.Cleanup.
func ClientTransport(t testing.TB) http.RoundTripper {
	rt, base := newClientTransport()
	t.Cleanup(base.CloseIdleConnections)
	return rt
}

// newClientTransport returns the ClientTransport round tripper and the
// transport under it, whose idle connections the caller must close.
func newClientTransport() (http.RoundTripper, *http.Transport) {
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.Proxy = nil // loopback only; an HTTP(S)_PROXY must not see test traffic
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	base.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && host == realmAlias {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return dialer.DialContext(ctx, network, addr)
	}
	return &realmAliasTransport{inner: base}, base
}

// realmAliasTransport rewrites loopback token realms in challenges; see ClientTransport.
type realmAliasTransport struct {
	inner http.RoundTripper
}

var _ http.RoundTripper = (*realmAliasTransport)(nil)

func (rt *realmAliasTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.inner.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	challenges := resp.Header.Values("WWW-Authenticate")
	if len(challenges) == 0 {
		return resp, nil
	}
	resp.Header.Del("WWW-Authenticate")
	for _, c := range challenges {
		resp.Header.Add("WWW-Authenticate",
			strings.ReplaceAll(c, `realm="http://127.0.0.1:`, `realm="http://`+realmAlias+`:`))
	}
	return resp, nil
}
