package relaytest

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParseScope(t *testing.T) {
	tests := []struct {
		scope      string
		typ, name  string
		actions    []string
		wantParsed bool
	}{
		{"repository:library/nginx:pull", "repository", "library/nginx", []string{"pull"}, true},
		{"repository:a/b/c:push,pull", "repository", "a/b/c", []string{"push", "pull"}, true},
		{"repository:localhost:5000/app:pull", "repository", "localhost:5000/app", []string{"pull"}, true},
		{"registry:catalog:*", "registry", "catalog", []string{"*"}, true},
		{"repository:app", "", "", nil, false},
		{"repository::pull", "", "", nil, false},
		{"repository:app:", "", "", nil, false},
		{":app:pull", "", "", nil, false},
		{"", "", "", nil, false},
	}
	for _, tt := range tests {
		typ, name, actions, ok := parseScope(tt.scope)
		if ok != tt.wantParsed || typ != tt.typ || name != tt.name || !slices.Equal(actions, tt.actions) {
			t.Errorf("parseScope(%q) = %q, %q, %v, %v; want %q, %q, %v, %v",
				tt.scope, typ, name, actions, ok, tt.typ, tt.name, tt.actions, tt.wantParsed)
		}
	}
}

// tokenCall is one request to the issuer and what it must answer.
type tokenCall struct {
	name       string
	req        func(ti *TokenIssuer) *http.Request
	wantStatus int
	wantCode   string            // error code in the body when not 200
	wantAccess []resourceActions // access claim when 200
}

func getToken(user, password string, scopes ...string) func(ti *TokenIssuer) *http.Request {
	return func(ti *TokenIssuer) *http.Request {
		q := url.Values{"service": {ti.Service}, "scope": scopes}
		req, _ := http.NewRequest(http.MethodGet, ti.Realm+"?"+q.Encode(), nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		return req
	}
}

func postToken(form url.Values) func(ti *TokenIssuer) *http.Request {
	return func(ti *TokenIssuer) *http.Request {
		if !form.Has("service") {
			form.Set("service", ti.Service)
		}
		req, _ := http.NewRequest(http.MethodPost, ti.Realm, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	ti := NewTokenIssuer(t, IssuerOptions{
		Users:        map[string]string{"alice": "wonderland"},
		PrivateRepos: []string{"private/*", "exact"},
	})
	pull := func(repo string) resourceActions {
		return resourceActions{Type: "repository", Name: repo, Actions: []string{"pull"}}
	}
	tests := []tokenCall{
		{name: "anonymous public", req: getToken("", "", "repository:app:pull,push"),
			wantStatus: 200, wantAccess: []resourceActions{pull("app")}},
		{name: "anonymous private", req: getToken("", "", "repository:private/x:pull repository:exact:pull", "repository:pub:pull"),
			wantStatus: 200, wantAccess: []resourceActions{pull("pub")}},
		{name: "anonymous catalog", req: getToken("", "", "registry:catalog:*"),
			wantStatus: 200, wantAccess: []resourceActions{}},
		{name: "user private push", req: getToken("alice", "wonderland", "repository:private/x:push,pull"),
			wantStatus: 200, wantAccess: []resourceActions{{Type: "repository", Name: "private/x", Actions: []string{"push", "pull"}}}},
		{name: "user catalog", req: getToken("alice", "wonderland", "registry:catalog:*"),
			wantStatus: 200, wantAccess: []resourceActions{}},
		{name: "admin catalog", req: getToken(AdminUser, AdminPassword, "registry:catalog:*"),
			wantStatus: 200, wantAccess: []resourceActions{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}},
		{name: "bad password", req: getToken("alice", "nope", "repository:app:pull"),
			wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "wrong service", req: func(ti *TokenIssuer) *http.Request {
			req, _ := http.NewRequest(http.MethodGet, ti.Realm+"?service=other&scope=repository:app:pull", nil)
			return req
		}, wantStatus: 400, wantCode: "DENIED"},
		{name: "password grant", req: postToken(url.Values{"grant_type": {"password"}, "username": {"alice"},
			"password": {"wonderland"}, "scope": {"repository:private/x:pull repository:app:pull"}, "client_id": {"test"}}),
			wantStatus: 200, wantAccess: []resourceActions{pull("private/x"), pull("app")}},
		{name: "password grant bad password", req: postToken(url.Values{"grant_type": {"password"},
			"username": {"alice"}, "password": {"x"}}), wantStatus: 401, wantCode: "UNAUTHORIZED"},
		{name: "refresh grant", req: postToken(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"r"}}),
			wantStatus: 400, wantCode: "UNSUPPORTED"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkTokenCall(t, ti, tt)
		})
	}
}

func checkTokenCall(t *testing.T, ti *TokenIssuer, tt tokenCall) {
	resp, err := http.DefaultClient.Do(tt.req(ti))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != tt.wantStatus {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tt.wantStatus, body)
	}
	if tt.wantStatus != http.StatusOK {
		var env struct{ Errors []struct{ Code string } }
		if err := json.Unmarshal(body, &env); err != nil || len(env.Errors) != 1 || env.Errors[0].Code != tt.wantCode {
			t.Errorf("body %s, want one error with code %s", body, tt.wantCode)
		}
		return
	}
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Token == "" || tr.Token != tr.AccessToken || tr.ExpiresIn != 300 || tr.IssuedAt == "" {
		t.Errorf("token response %s", body)
	}
	claims := decodeClaims(t, tr.Token)
	if claims.Issuer != ti.Issuer || claims.Audience != ti.Service {
		t.Errorf("iss/aud = %q/%q", claims.Issuer, claims.Audience)
	}
	got, _ := json.Marshal(claims.Access)
	want, _ := json.Marshal(tt.wantAccess)
	if string(got) != string(want) {
		t.Errorf("access = %s, want %s", got, want)
	}
}

func decodeClaims(t *testing.T, token string) claimSet {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c claimSet
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRequestsRecordsScopes(t *testing.T) {
	t.Parallel()
	ti := NewTokenIssuer(t, IssuerOptions{})
	checkTokenCall(t, ti, tokenCall{
		req:        getToken(AdminUser, AdminPassword, "repository:a:pull repository:b:push", "repository:c:pull"),
		wantStatus: 200,
		wantAccess: []resourceActions{
			{Type: "repository", Name: "a", Actions: []string{"pull"}},
			{Type: "repository", Name: "b", Actions: []string{"push"}},
			{Type: "repository", Name: "c", Actions: []string{"pull"}},
		},
	})
	reqs := ti.Requests()
	want := TokenRequest{
		Method:           http.MethodGet,
		Service:          ti.Service,
		Scopes:           []string{"repository:a:pull", "repository:b:push", "repository:c:pull"},
		Username:         AdminUser,
		HadAuthorization: true,
	}
	if len(reqs) != 1 || !tokenRequestEqual(reqs[0], want) {
		t.Fatalf("Requests() = %+v, want [%+v]", reqs, want)
	}
	reqs[0].Scopes[0] = "mutated"
	if ti.Requests()[0].Scopes[0] != "repository:a:pull" {
		t.Error("Requests() shares its Scopes slices with the issuer")
	}
}

func tokenRequestEqual(a, b TokenRequest) bool {
	return a.Method == b.Method && a.Service == b.Service && slices.Equal(a.Scopes, b.Scopes) &&
		a.Username == b.Username && a.HadAuthorization == b.HadAuthorization
}
