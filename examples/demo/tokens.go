package main

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"
)

// tokenTTL is the 300 s Docker Hub hands out.
const tokenTTL = 300 * time.Second

// tokenIssuer plays auth.docker.io: a token server (the "realm" of the
// Bearer challenge, https://distribution.github.io/distribution/spec/auth/token/)
// whose tokens grant pull on the repositories asked for, except private
// ones to anonymous callers. Tokens are HMAC-signed claims that only this
// process can check; protect checks them in front of a registry.
type tokenIssuer struct {
	*server
	Realm   string // URL + "/token"
	service string
	key     []byte
	users   map[string]string
	private []string // path.Match patterns
}

// claims is what a token grants.
type claims struct {
	Subject string   `json:"sub,omitempty"`
	Repos   []string `json:"repos"`
	Expiry  int64    `json:"exp"`
}

func startTokenIssuer(users map[string]string, private []string) (*tokenIssuer, error) {
	ti := &tokenIssuer{service: "demo-registry", key: make([]byte, 32), users: users, private: private}
	_, _ = rand.Read(ti.key) // crypto/rand.Read never fails since Go 1.24
	mux := http.NewServeMux()
	mux.HandleFunc("GET /token", ti.serveToken)
	mux.HandleFunc("POST /token", ti.serveToken)
	srv, err := serve(mux)
	if err != nil {
		return nil, err
	}
	ti.server, ti.Realm = srv, srv.URL+"/token"
	return ti, nil
}

// serveToken answers GET with optional Basic auth, as Docker and crane
// ask, and the OAuth2 password grant (POST), as Docker may.
func (ti *tokenIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	service, scopes := r.URL.Query().Get("service"), r.URL.Query()["scope"]
	user, password, hasCreds := r.BasicAuth()
	if r.Method == http.MethodPost {
		if r.PostFormValue("grant_type") != "password" {
			writeError(w, http.StatusBadRequest, "UNSUPPORTED", "only the password grant is supported")
			return
		}
		service, scopes = r.PostFormValue("service"), r.PostForm["scope"]
		user, password, hasCreds = r.PostFormValue("username"), r.PostFormValue("password"), true
	}
	if service != ti.service {
		writeError(w, http.StatusBadRequest, "DENIED", fmt.Sprintf("unknown service %q", service))
		return
	}
	if hasCreds && (ti.users[user] == "" || ti.users[user] != password) {
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
		return
	}
	token := ti.sign(claims{Subject: user, Repos: ti.grants(user, scopes), Expiry: time.Now().Add(tokenTTL).Unix()})
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token": token, "access_token": token, // Docker reads the first, OAuth2 clients the second
		"expires_in": int(tokenTTL.Seconds()),
		"issued_at":  time.Now().UTC().Format(time.RFC3339),
	})
}

// grants are the repositories of pull scopes ("repository:NAME:pull",
// space-separated lists allowed) that user ("" for anonymous) may pull.
func (ti *tokenIssuer) grants(user string, scopes []string) []string {
	var repos []string
	for _, scope := range strings.Fields(strings.Join(scopes, " ")) {
		typ, rest, _ := strings.Cut(scope, ":")
		i := strings.LastIndex(rest, ":")
		if typ != "repository" || i < 0 || !slices.Contains(strings.Split(rest[i+1:], ","), "pull") {
			continue
		}
		if repo := rest[:i]; user != "" || !ti.isPrivate(repo) {
			repos = append(repos, repo)
		}
	}
	return repos
}

func (ti *tokenIssuer) isPrivate(repo string) bool {
	return slices.ContainsFunc(ti.private, func(pattern string) bool {
		ok, _ := path.Match(pattern, repo)
		return ok
	})
}

func (ti *tokenIssuer) sign(c claims) string {
	payload, _ := json.Marshal(c) // a struct of strings and ints always marshals
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(ti.mac(payload))
}

func (ti *tokenIssuer) mac(payload []byte) []byte {
	m := hmac.New(sha256.New, ti.key)
	m.Write(payload)
	return m.Sum(nil)
}

// verify returns the claims of an unexpired token this issuer signed.
func (ti *tokenIssuer) verify(token string) (claims, bool) {
	enc := base64.RawURLEncoding
	p, s, _ := strings.Cut(token, ".")
	payload, err1 := enc.DecodeString(p)
	sig, err2 := enc.DecodeString(s)
	var c claims
	if err1 != nil || err2 != nil || !hmac.Equal(sig, ti.mac(payload)) || json.Unmarshal(payload, &c) != nil {
		return claims{}, false
	}
	return c, time.Now().Unix() < c.Expiry
}

// protect is distribution's token auth in front of a read-only registry:
// /v2/ needs any token, a repository needs a token granting it, and a
// request without one gets the Bearer challenge clients start the token
// flow from.
func (ti *tokenIssuer) protect(reg http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the Docker Hub stand-in is read-only")
			return
		}
		repo, named := repository(r.URL.Path)
		bearer, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		c, valid := ti.verify(bearer)
		if valid && (r.URL.Path == "/v2/" || named && slices.Contains(c.Repos, repo)) {
			reg.ServeHTTP(w, r)
			return
		}
		challenge := fmt.Sprintf("Bearer realm=%q,service=%q", ti.Realm, ti.service)
		if named {
			challenge += fmt.Sprintf(",scope=%q", "repository:"+repo+":pull")
		}
		w.Header().Set("WWW-Authenticate", challenge)
		writeError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	})
}

// repository is the NAME of /v2/NAME/{manifests,blobs,tags}/...
func repository(urlPath string) (string, bool) {
	rest, ok := strings.CutPrefix(urlPath, "/v2/")
	if !ok {
		return "", false
	}
	for _, kind := range []string{"/manifests/", "/blobs/", "/tags/"} {
		if i := strings.LastIndex(rest, kind); i > 0 {
			return rest[:i], true
		}
	}
	return "", false
}

// writeError answers in the distribution error envelope.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": code, "message": message}},
	})
}
