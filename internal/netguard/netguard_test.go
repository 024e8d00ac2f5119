package netguard_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/registry-relay/registry-relay/internal/netguard"
)

func TestClassify(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		// public
		{"1.1.1.1", ""},
		{"8.8.8.8", ""},
		{"104.16.0.1", ""},
		{"172.15.255.255", ""},
		{"172.32.0.0", ""},
		{"100.63.255.255", ""},
		{"100.128.0.0", ""},
		{"169.253.255.255", ""},
		{"2606:4700::1111", ""},
		{"2a00:1450:4001::200e", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", ""},  // 6to4 of 8.8.8.8
		// loopback
		{"127.0.0.1", netguard.Loopback},
		{"127.255.255.254", netguard.Loopback},
		{"::1", netguard.Loopback},
		{"::ffff:127.0.0.1", netguard.Loopback},
		{"64:ff9b::7f00:1", netguard.Loopback}, // NAT64 of 127.0.0.1
		{"2002:7f00:1::1", netguard.Loopback},  // 6to4 of 127.0.0.1
		// link-local, cloud metadata
		{"169.254.169.254", netguard.LinkLocal},
		{"169.254.0.1", netguard.LinkLocal},
		{"::ffff:169.254.169.254", netguard.LinkLocal},
		{"fe80::1", netguard.LinkLocal},
		{"fe80::1%eth0", netguard.LinkLocal},
		{"64:ff9b::a9fe:a9fe", netguard.LinkLocal},
		// private
		{"10.0.0.1", netguard.Private},
		{"10.255.255.255", netguard.Private},
		{"172.16.0.1", netguard.Private},
		{"172.31.255.255", netguard.Private},
		{"192.168.1.1", netguard.Private},
		{"100.64.0.1", netguard.Private},
		{"100.100.100.200", netguard.Private}, // Alibaba Cloud metadata
		{"fc00::1", netguard.Private},
		{"fd00:ec2::254", netguard.Private}, // AWS IPv6 metadata
		{"fec0::1", netguard.Private},
		{"64:ff9b:1::a00:1", netguard.Private},
		{"::ffff:10.0.0.1", netguard.Private},
		// unspecified
		{"0.0.0.0", netguard.Unspecified},
		{"0.1.2.3", netguard.Unspecified},
		{"::", netguard.Unspecified},
		{"::ffff:0.0.0.0", netguard.Unspecified},
		// multicast
		{"224.0.0.1", netguard.Multicast},
		{"239.255.255.250", netguard.Multicast},
		{"ff02::1", netguard.Multicast},
		{"ff05::2", netguard.Multicast},
		// reserved
		{"255.255.255.255", netguard.Reserved},
		{"240.0.0.1", netguard.Reserved},
		{"192.0.0.1", netguard.Reserved},
		{"192.0.2.1", netguard.Reserved},
		{"198.18.0.1", netguard.Reserved},
		{"198.51.100.1", netguard.Reserved},
		{"203.0.113.1", netguard.Reserved},
		{"2001:db8::1", netguard.Reserved},
		{"2001::1", netguard.Reserved}, // Teredo
		{"100::1", netguard.Reserved},
		{"::7f00:1", netguard.Reserved}, // IPv4-compatible
		{"4000::1", netguard.Reserved},  // unassigned
	} {
		a := netip.MustParseAddr(tc.addr)
		if got := netguard.Classify(a); got != tc.want {
			t.Errorf("Classify(%s) = %q, want %q", tc.addr, got, tc.want)
		}
		if got := netguard.IsPublic(a); got != (tc.want == "") {
			t.Errorf("IsPublic(%s) = %v", tc.addr, got)
		}
	}
	if netguard.IsPublic(netip.Addr{}) {
		t.Error("the zero Addr is public")
	}
}

func TestCheckHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"registry-1.docker.io", true},
		{"8.8.8.8", true},
		{"[2606:4700::1111]", true},
		{"localhost", false},
		{"LOCALHOST.", false},
		{"metadata.localhost", false},
		{"127.0.0.1", false},
		{"169.254.169.254", false},
		{"[::1]", false},
		{"::ffff:10.1.2.3", false},
		{"evil.example", true}, // judged when dialled
		{"127.0.0.1.", false},  // a trailing dot is the same address
		{"169.254.169.254.", false},
		{"LOCALHOST", false},
		{"2130706433", false}, // 127.0.0.1 in inet_aton's shorthand forms
		{"127.1", false},
		{"0x7f.0.0.1", false},
		{"0177.0.0.1", false},
		{"0x7f000001", false},
		{"8.8.8.8.", true},
		{"cdn-1.example.com.", true},
		{"1password.example", true}, // a number in a label, not the last one
	} {
		err := netguard.CheckHost(tc.host)
		if (err == nil) != tc.ok {
			t.Errorf("CheckHost(%q) = %v, want ok=%v", tc.host, err, tc.ok)
		}
		var re *netguard.RefusedError
		if err != nil && !errors.As(err, &re) {
			t.Errorf("CheckHost(%q) error %T is not a RefusedError", tc.host, err)
		}
	}
}

// loopbackServer accepts connections and closes them.
func loopbackServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().String()
}

func TestDialRefusesNonPublicOnlyWhenAsked(t *testing.T) {
	addr := loopbackServer(t)
	dial := netguard.DialContext(&net.Dialer{Timeout: 2 * time.Second})

	c, err := dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatalf("unmarked dial refused: %v", err)
	}
	c.Close()

	_, err = dial(netguard.PublicOnly(context.Background()), "tcp", addr)
	var re *netguard.RefusedError
	if !errors.As(err, &re) || re.Reason != netguard.Loopback {
		t.Fatalf("public-only dial to %s: err = %v, want a loopback RefusedError", addr, err)
	}
	if !strings.Contains(err.Error(), "127.0.0.1 is not a public address (loopback)") {
		t.Errorf("error does not name the address and reason: %v", err)
	}
}

// TestDialChecksTheResolvedAddress stands in for DNS rebinding: the name
// is only turned into an address inside the dial, and the address is what
// gets judged.
func TestDialChecksTheResolvedAddress(t *testing.T) {
	addr := loopbackServer(t)
	_, port, _ := net.SplitHostPort(addr)
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return nil, errors.New("no DNS in tests")
	}}
	d := &net.Dialer{Timeout: 2 * time.Second, Resolver: resolver}
	dial := netguard.DialContext(d)
	// "localhost" resolves from /etc/hosts without DNS; CheckHost would
	// refuse the name outright, but the dial only sees the address.
	_, err := dial(netguard.PublicOnly(context.Background()), "tcp", net.JoinHostPort("localhost", port))
	var re *netguard.RefusedError
	if !errors.As(err, &re) || !re.Addr.IsLoopback() {
		t.Fatalf("dial of localhost: err = %v, want a RefusedError on the loopback address", err)
	}
}

func TestDialKeepsExistingControl(t *testing.T) {
	addr := loopbackServer(t)
	called := false
	dial := netguard.DialContext(&net.Dialer{Control: func(string, string, syscall.RawConn) error {
		called = true
		return nil
	}})
	c, err := dial(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !called {
		t.Error("the dialer's own Control was dropped")
	}
}

func TestProxy(t *testing.T) {
	proxyURL := &url.URL{Scheme: "http", Host: "127.0.0.1:3128"}
	viaProxy := netguard.Proxy(func(*http.Request) (*url.URL, error) { return proxyURL, nil })
	direct := netguard.Proxy(func(*http.Request) (*url.URL, error) { return nil, nil })
	public := netguard.PublicOnly(context.Background())
	for _, tc := range []struct {
		name   string
		proxy  func(*http.Request) (*url.URL, error)
		ctx    context.Context
		target string
		want   *url.URL
		refuse bool
	}{
		{"unmarked private target", viaProxy, context.Background(), "http://10.0.0.1/x", proxyURL, false},
		{"public-only public literal", viaProxy, public, "https://8.8.8.8/x", proxyURL, false},
		{"public-only private literal", viaProxy, public, "http://10.0.0.1/x", nil, true},
		{"public-only metadata", viaProxy, public, "http://169.254.169.254/latest/meta-data/", nil, true},
		{"public-only localhost", viaProxy, public, "http://localhost:9090/metrics", nil, true},
		{"direct is left to the dial", direct, public, "http://10.0.0.1/x", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(tc.ctx, "GET", tc.target, nil)
			got, err := tc.proxy(req)
			var re *netguard.RefusedError
			switch {
			case tc.refuse && !errors.As(err, &re):
				t.Fatalf("err = %v, want a RefusedError", err)
			case !tc.refuse && err != nil:
				t.Fatalf("err = %v", err)
			case got != tc.want:
				t.Fatalf("proxy = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestProxyDialIsExempt: the proxy itself usually sits on a private
// address; a public-only request sent through it must still connect.
func TestProxyDialIsExempt(t *testing.T) {
	addr := loopbackServer(t)
	proxy := netguard.Proxy(func(*http.Request) (*url.URL, error) { return &url.URL{Scheme: "http", Host: addr}, nil })
	dial := netguard.DialContext(&net.Dialer{Timeout: 2 * time.Second})
	ctx := netguard.PublicOnly(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://8.8.8.8/v2/", nil)
	if _, err := proxy(req); err != nil {
		t.Fatal(err)
	}
	c, err := dial(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("dial to the request's proxy refused: %v", err)
	}
	c.Close()
	// Another public-only request, not proxied, may not reach that address.
	if _, err := dial(netguard.PublicOnly(context.Background()), "tcp", addr); err == nil {
		t.Fatal("the proxy's address was exempt for a request that did not use the proxy")
	}
}

func TestResolvesPublic(t *testing.T) {
	ctx := context.Background()
	for host, want := range map[string]bool{
		"127.0.0.1": false, "10.1.2.3": false, "localhost": false, "[::1]": false, "8.8.8.8": true, "[2606:4700::1111]": true,
	} {
		if got, err := netguard.ResolvesPublic(ctx, net.DefaultResolver, host); got != want || err != nil {
			t.Errorf("ResolvesPublic(%q) = %v, %v; want %v", host, got, err, want)
		}
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:a00:1::", "8.8.8.8", "fe80::1%eth0", "::", "ff02::1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = netguard.CheckHost(s)
		_ = netguard.Control(netguard.PublicOnly(context.Background()), "tcp", s, nil)
		a, err := netip.ParseAddr(s)
		if err != nil {
			return
		}
		r := netguard.Classify(a)
		// The same address spelled as IPv4-mapped IPv6 must get the same verdict.
		if a.Is4() {
			if m := netip.AddrFrom16(a.As16()); netguard.Classify(m) != r {
				t.Fatalf("%s is %q but %s is %q", a, r, m, netguard.Classify(m))
			}
		}
		if r == "" && (a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsUnspecified() || a.Unmap().IsLoopback()) {
			t.Fatalf("%s classified public", a)
		}
		if r == "" && netguard.CheckHost(s) != nil {
			t.Fatalf("CheckHost refuses public %s", s)
		}
		if r != "" && netguard.CheckHost(s) == nil {
			t.Fatalf("CheckHost lets non-public %s (%s) pass", s, r)
		}
	})
}
