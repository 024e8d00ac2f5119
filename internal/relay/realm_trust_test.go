package relay_test

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/registry-relay/registry-relay/internal/registry"
	"github.com/registry-relay/registry-relay/internal/relaytest"
)

const relayAccountBasic = "Basic cmVsYXk6czNjcmV0" // relay:s3cret

// withAccount adds the relay's own upstream account to a route's env.
func withAccount(env map[string]string) map[string]string {
	env["DOCKERHUB_USERNAME"], env["DOCKERHUB_PASSWORD"] = "relay", "s3cret"
	return env
}

// TestStorageChallengesTeachNothing: a CDN that a redirect led to answers
// 401 with a Bearer challenge whose realm is a loopback canary (listed as
// an auth host, so only the origin rule stands between them). The client
// sees no challenge and none of the CDN's body, the relay never learns the
// realm, and no token request (the relay account's included) reaches the
// canary — on the route host, the mirror host and ?ns=, for blobs and
// manifests, with and without client credentials.
func TestStorageChallengesTeachNothing(t *testing.T) {
	canary := relaytest.NewRecorder(t, nil)
	cdn := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+canary.URL+`/latest/meta-data/",service="cdn"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"cdn-secret"}]}`)
	})
	upstream := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // anonymous registry: 200
		}
		http.Redirect(w, r, cdn.URL+"/storage"+r.URL.Path, http.StatusTemporaryRedirect)
	})
	relay, _ := startRelay(t, withAccount(hubEnv(upstream.URL, canary.Host)))
	for _, tc := range []struct{ name, host, path, auth string }{
		{"blob", hubHost, "/v2/x/blobs/" + digestA, ""},
		{"manifest by tag", hubHost, "/v2/x/manifests/latest", ""},
		{"manifest with client token", hubHost, "/v2/x/manifests/latest", "Bearer client"},
		{"mirror host", "mirror.test", "/v2/library/x/manifests/latest", ""},
		{"mirror ?ns=", "mirror.test", "/v2/library/x/blobs/" + digestA + "?ns=docker.io", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.auth != "" {
				hdr.Set("Authorization", tc.auth)
			}
			resp := call(t, relay, http.MethodGet, tc.host, tc.path, hdr)
			if c := resp.Header.Values("WWW-Authenticate"); len(c) != 0 {
				t.Errorf("a storage host's challenge reached the client: %q", c)
			}
			if msg := wantOCIError(t, resp, http.StatusUnauthorized, "UNAUTHORIZED"); strings.Contains(msg, "cdn-secret") {
				t.Errorf("the storage host's body reached the client: %q", msg)
			}
		})
	}
	for _, host := range []string{hubHost, "mirror.test"} {
		resp := call(t, relay, http.MethodGet, host, "/token?scope=repository:library/x:pull&service=cdn", nil)
		resp.Body.Close()
	}
	if n := canary.Count(); n != 0 {
		t.Fatalf("the canary received %d requests: %+v", n, canary.Requests())
	}
}

// TestCredentialHostChallengesCount is the other side of the rule: a
// credential host (lscr.io's ghcr.io; here <NAME>_CREDENTIAL_HOSTS) speaks
// for the upstream, so its challenge is rewritten and its realm used.
func TestCredentialHostChallengesCount(t *testing.T) {
	tokens := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token":"from-the-credential-host-realm"}`)
	})
	handover := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokens.URL+`/token",service="handover"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	upstream := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, handover.URL+r.URL.Path, http.StatusTemporaryRedirect)
	})
	env := hubEnv(upstream.URL, tokens.Host)
	env["DOCKERHUB_CREDENTIAL_HOSTS"] = handover.Host
	relay, _ := startRelay(t, env)
	resp := call(t, relay, http.MethodGet, hubHost, "/v2/x/manifests/latest", http.Header{"Authorization": {"Bearer old"}})
	resp.Body.Close()
	challenge := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(challenge, `Bearer realm="http://dhcr.test/token/dockerhub.`) {
		t.Fatalf("status %d, challenge %q; want the credential host's challenge rewritten to the relay", resp.StatusCode, challenge)
	}
	if got := handover.Requests(); len(got) != 1 || got[0].Header.Get("Authorization") != "Bearer old" {
		t.Fatalf("the credential host did not get the client's token: %+v", got)
	}
	realm := strings.TrimPrefix(challenge, `Bearer realm="http://dhcr.test`)
	realm = realm[:strings.Index(realm, `"`)]
	body := readAll(t, call(t, relay, http.MethodGet, hubHost, realm+"?service=handover&scope=repository:library/x:pull", nil))
	if !strings.Contains(string(body), "from-the-credential-host-realm") {
		t.Fatalf("token from the credential host's realm: %s", body)
	}
}

// TestOverriddenUpstreamRealmsAreAllowListed: an operator-overridden
// upstream names realms the route does not list — another port of its
// own host, link-local metadata, a URL with credentials. The client is
// pointed at the relay's bare token endpoint, which refuses, and neither
// the client's credentials nor the relay account's reach the realm.
func TestOverriddenUpstreamRealmsAreAllowListed(t *testing.T) {
	canary := relaytest.NewRecorder(t, nil)
	for _, realm := range []string{
		canary.URL + "/token",
		canary.URL + "/latest/meta-data/iam/security-credentials/",
		"http://169.254.169.254/latest/meta-data/",
		"http://u:p@" + canary.Host + "/token",
		"http://" + canary.Host + "./token",
	} {
		t.Run(realm, func(t *testing.T) {
			upstream := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="svc"`)
				w.WriteHeader(http.StatusUnauthorized)
			})
			relay, _ := startRelay(t, withAccount(hubEnv(upstream.URL)))
			resp := call(t, relay, http.MethodGet, hubHost, "/v2/x/manifests/latest", nil)
			resp.Body.Close()
			if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, `Bearer realm="http://dhcr.test/token",`) {
				t.Errorf("challenge %q; want the relay's bare token endpoint", got)
			}
			for _, hdr := range []http.Header{nil, {"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw"))}}} {
				wantOCIError(t, call(t, relay, http.MethodGet, hubHost, "/token?scope=repository:x:pull&service=svc", hdr), http.StatusBadGateway, "UNAVAILABLE")
			}
		})
	}
	if n := canary.Count(); n != 0 {
		t.Fatalf("the canary received %d requests: %+v", n, canary.Requests())
	}
}

func challengeAnswer(realm string) func(*http.Request) *http.Response {
	return func(*http.Request) *http.Response {
		h := http.Header{"Www-Authenticate": {`Bearer realm="` + realm + `",service="svc"`}}
		return &http.Response{StatusCode: http.StatusUnauthorized, Header: h, Body: http.NoBody}
	}
}

// relayRealm asks the relay for a challenge and returns the path of the
// token endpoint it names.
func relayRealm(t *testing.T, srv *httptest.Server, host string) string {
	t.Helper()
	resp := call(t, srv, http.MethodGet, host, "/v2/", nil)
	resp.Body.Close()
	c := resp.Header.Get("WWW-Authenticate")
	_, rest, ok := strings.Cut(c, `realm="http://`+host)
	if !ok {
		t.Fatalf("challenge %q names no realm on %s", c, host)
	}
	return rest[:strings.Index(rest, `"`)]
}

// TestRealmsOfPublicRoutesStayPublic: a public upstream whose realm is an
// allowed auth host still cannot steer the relay's token request onto the
// relay's own network (the operator listed 127.0.0.1 or localhost, a DNS
// record was poisoned), and an https upstream cannot downgrade its realm
// to http even to an allowed host.
func TestRealmsOfPublicRoutesStayPublic(t *testing.T) {
	canary := relaytest.NewRecorder(t, nil)
	_, port, _ := strings.Cut(canary.Host, ":")
	for _, tc := range []struct{ name, upstream, realm, authHost string }{
		{"loopback literal", "http://registry.example", canary.URL + "/token", canary.Host},
		{"localhost name", "http://registry.example", "http://localhost:" + port + "/token", "localhost:" + port},
		{"https downgraded", "https://registry.example", "http://auth.example/token", "auth.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, _ := url.Parse(tc.upstream)
			route := &registry.Route{Name: "public", AccessDomain: "public.test", Upstream: up, AuthHosts: []string{tc.authHost}}
			f := &fakePublic{answer: challengeAnswer(tc.realm)}
			srv := publicRelay(t, route, f, false)
			realmPath := relayRealm(t, srv, "public.test")
			resp := call(t, srv, http.MethodGet, "public.test", realmPath+"?scope=repository:x:pull&service=svc", nil)
			body := readAll(t, resp)
			if resp.StatusCode != http.StatusBadGateway {
				t.Errorf("token request: %d %s; want 502", resp.StatusCode, body)
			}
			if f.reached("auth.example") {
				t.Error("the downgraded realm was contacted")
			}
		})
	}
	if n := canary.Count(); n != 0 {
		t.Fatalf("the canary received %d requests", n)
	}
}

// tokenService records token requests and grants whatever was asked.
func tokenService(t *testing.T) *relaytest.Recorder {
	return relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token":"t","expires_in":300}`)
	})
}

// scopesSeen returns the scopes of a recorded token request, GET or POST.
func scopesSeen(r relaytest.Recorded) []string {
	q, _ := url.ParseQuery(r.RawQuery)
	if r.Method == http.MethodPost {
		q, _ = url.ParseQuery(string(r.Body))
	}
	var out []string
	for _, s := range q["scope"] {
		out = append(out, strings.Fields(s)...)
	}
	return out
}

// TestTokenScopesPatchedAndFiltered: every scope of a token request —
// several scope parameters, several scopes in one, GET and POST — is
// patched for Docker Hub, and the scopes the route's repository policy
// refuses never reach the token service, whoever's credentials go with
// them; the relay's own account only ever asks to pull, and the mirror's
// stand-in token is never forwarded.
func TestTokenScopesPatchedAndFiltered(t *testing.T) {
	tokens := tokenService(t)
	upstream := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokens.URL+`/token",service="hub"`)
		w.WriteHeader(http.StatusUnauthorized)
	})
	env := withAccount(hubEnv(upstream.URL, tokens.Host))
	env["DOCKERHUB_DENY_REPOS"] = "library/busybox,secret/*"
	relay, _ := startRelay(t, env)
	alice := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw"))
	form := func(v string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, relay.URL+"/token", strings.NewReader(v))
		req.Host = hubHost
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
	for _, tc := range []struct {
		name     string
		host     string
		query    string
		post     string
		auth     string
		want     []string
		wantAuth string
	}{
		{"two parameters, relay account", hubHost,
			"scope=repository:nginx:pull&scope=" + url.QueryEscape("repository:busybox:pull repository:someuser/app:pull,push"), "", "",
			[]string{"repository:library/nginx:pull", "repository:someuser/app:pull"}, relayAccountBasic},
		{"client credentials keep their actions", hubHost,
			"scope=" + url.QueryEscape("repository:someuser/app:pull,push repository:secret/x:pull"), "", alice,
			[]string{"repository:someuser/app:pull,push"}, alice},
		{"everything denied", hubHost, "scope=repository:busybox:pull&scope=repository:library/busybox:pull", "", alice, nil, alice},
		{"tab-separated scopes judged as mapped", hubHost, "scope=" + url.QueryEscape("repository:nginx:pull\trepository:busybox:pull"), "", alice,
			[]string{"repository:library/nginx:pull"}, alice},
		{"look-alike and malformed scopes dropped", hubHost, "scope=" + url.QueryEscape(
			"Repository:secret/x:pull repository:Secret/X:pull repository:secret//x:pull repository:secret/x repository:nginx:pull"), "", alice,
			[]string{"repository:library/nginx:pull"}, alice},
		{"catalog scope not lent to the relay account", hubHost, "scope=registry:catalog:*", "", "", nil, relayAccountBasic},
		{"mirror stand-in token", "mirror.test", "scope=repository:library/nginx:pull", "", "Bearer registry-relay-anonymous",
			[]string{"repository:library/nginx:pull"}, relayAccountBasic},
		{"POST form", hubHost, "", "grant_type=password&username=alice&password=pw&service=hub&client_id=test&scope=" +
			url.QueryEscape("repository:nginx:pull repository:busybox:pull"), "", []string{"repository:library/nginx:pull"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := tokens.Count()
			var resp *http.Response
			if tc.post != "" {
				var err error
				if resp, err = relay.Client().Do(form(tc.post)); err != nil {
					t.Fatal(err)
				}
			} else {
				hdr := http.Header{}
				if tc.auth != "" {
					hdr.Set("Authorization", tc.auth)
				}
				resp = call(t, relay, http.MethodGet, tc.host, "/token?service=hub&"+tc.query, hdr)
			}
			if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
				t.Fatalf("token: %d %s", resp.StatusCode, body)
			}
			got := tokens.Requests()[before:]
			if len(got) != 1 {
				t.Fatalf("token service got %d requests", len(got))
			}
			if scopes := scopesSeen(got[0]); strings.Join(scopes, " ") != strings.Join(tc.want, " ") {
				t.Errorf("scopes sent upstream %q, want %q", scopes, tc.want)
			}
			if a := got[0].Header.Get("Authorization"); a != tc.wantAuth {
				t.Errorf("Authorization sent upstream %q, want %q", a, tc.wantAuth)
			}
		})
	}
}

// TestStandInTokenNeverForwarded: the token the mirror host hands out for
// registries without token auth means "no credentials"; neither a token
// service nor a registry ever receives it.
func TestStandInTokenNeverForwarded(t *testing.T) {
	tokens := tokenService(t)
	upstream := relaytest.NewRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" || r.Header.Get("Authorization") != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokens.URL+`/token",service="hub"`)
			w.WriteHeader(http.StatusUnauthorized)
		}
	})
	relay, _ := startRelay(t, hubEnv(upstream.URL, tokens.Host))
	standIn := http.Header{"Authorization": {"Bearer registry-relay-anonymous"}}
	readAll(t, call(t, relay, http.MethodGet, "mirror.test", "/token?service=hub&scope=repository:library/x:pull", standIn))
	readAll(t, call(t, relay, http.MethodGet, "mirror.test", "/v2/library/x/manifests/latest?ns=docker.io", standIn))
	for _, r := range append(tokens.Requests(), upstream.Requests()...) {
		if a := r.Header.Get("Authorization"); a != "" {
			t.Errorf("%s %s carried Authorization %q", r.Method, r.Path, a)
		}
	}
	if tokens.Count() == 0 {
		t.Fatal("the token request did not reach the token service")
	}
}
