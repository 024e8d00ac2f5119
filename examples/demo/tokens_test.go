package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestProtect walks the token flow against the seeded Docker Hub stand-in:
// who gets which repository, and what a refused request is told.
func TestProtect(t *testing.T) {
	ti, err := startTokenIssuer(map[string]string{demoUser: demoPassword}, []string{"private/*"})
	if err != nil {
		t.Fatal(err)
	}
	defer ti.Close()
	reg := newRegistry()
	for _, repo := range []string{"library/hello", "private/hello"} {
		if err := seed(t.Context(), reg, repo, "latest"); err != nil {
			t.Fatal(err)
		}
	}
	hub := ti.protect(reg)

	for _, tc := range []struct {
		name, user, password, repo string
		want                       int
	}{
		{"anonymous public", "", "", "library/hello", http.StatusOK},
		{"anonymous private", "", "", "private/hello", http.StatusUnauthorized},
		{"user private", demoUser, demoPassword, "private/hello", http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			token := fetchToken(t, ti, tc.user, tc.password, "repository:"+tc.repo+":pull")
			if got := get(hub, "/v2/"+tc.repo+"/manifests/latest", token); got.Code != tc.want {
				t.Errorf("status %d, want %d", got.Code, tc.want)
			}
		})
	}

	other := fetchToken(t, ti, "", "", "repository:library/hello:pull")
	for _, tc := range []struct{ name, path, token string }{
		{"no token", "/v2/library/hello/manifests/latest", ""},
		{"token for another repository", "/v2/private/hello/manifests/latest", other},
		{"forged token", "/v2/library/hello/manifests/latest", other[:strings.Index(other, ".")] + ".AAAA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := get(hub, tc.path, tc.token)
			repo, _ := repository(tc.path)
			want := `Bearer realm="` + ti.Realm + `",service="demo-registry",scope="repository:` + repo + `:pull"`
			if got.Code != http.StatusUnauthorized || got.Header().Get("WWW-Authenticate") != want {
				t.Errorf("got %d %q, want 401 %q", got.Code, got.Header().Get("WWW-Authenticate"), want)
			}
		})
	}

	req, _ := http.NewRequest(http.MethodGet, ti.Realm+"?service=demo-registry", nil)
	req.SetBasicAuth(demoUser, "wrong")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("wrong password: status %d, want 401", resp.StatusCode)
	}
}

// TestPasswordGrant is the OAuth2 form of the token request (POST).
func TestPasswordGrant(t *testing.T) {
	ti, err := startTokenIssuer(map[string]string{demoUser: demoPassword}, []string{"private/*"})
	if err != nil {
		t.Fatal(err)
	}
	defer ti.Close()
	resp, err := http.PostForm(ti.Realm, url.Values{
		"grant_type": {"password"}, "service": {"demo-registry"},
		"username": {demoUser}, "password": {demoPassword},
		"scope": {"repository:private/hello:pull repository:library/hello:pull,push"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	c, ok := ti.verify(body.AccessToken)
	if !ok || c.Subject != demoUser || strings.Join(c.Repos, " ") != "private/hello library/hello" {
		t.Errorf("claims %+v (valid %v), want demo with private/hello and library/hello", c, ok)
	}
}

// fetchToken asks the issuer as Docker does: GET, with Basic auth for a user.
func fetchToken(t *testing.T, ti *tokenIssuer, user, password, scope string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ti.Realm+"?service=demo-registry&scope="+url.QueryEscape(scope), nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Token == "" {
		t.Fatalf("token response %d: %v", resp.StatusCode, err)
	}
	return body.Token
}

func get(h http.Handler, path, token string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}
