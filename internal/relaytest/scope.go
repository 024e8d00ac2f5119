package relaytest

import (
	"net/http"
	"path"
	"slices"
	"strings"
)

// credentials are what a token request presented, from Basic auth or form.
type credentials struct {
	present  bool
	username string
	password string
}

// requestError is a malformed token request, answered with 400.
type requestError struct {
	code    string
	message string
}

// readTokenRequest understands both the GET flavour of the token spec and
// the OAuth2 POST flavour (https://distribution.github.io/distribution/spec/auth/oauth/).
// The returned TokenRequest is filled in as far as parsing got, so even a
// rejected request can be recorded.
func readTokenRequest(r *http.Request) (TokenRequest, credentials, *requestError) {
	req := TokenRequest{
		Method:           r.Method,
		HadAuthorization: r.Header.Get("Authorization") != "",
	}
	// ParseForm merges the query with a form body, so a POST that carries
	// service or scope in its URL is understood too.
	if err := r.ParseForm(); err != nil {
		return req, credentials{}, &requestError{"UNSUPPORTED", "malformed form: " + err.Error()}
	}
	req.Service = r.Form.Get("service")
	// A scope parameter may repeat and each may hold a space-separated list.
	for _, s := range r.Form["scope"] {
		req.Scopes = append(req.Scopes, strings.Fields(s)...)
	}

	var creds credentials
	if r.Method == http.MethodPost {
		switch grant := r.PostForm.Get("grant_type"); grant {
		case "password":
			creds = credentials{present: true, username: r.PostForm.Get("username"), password: r.PostForm.Get("password")}
		case "refresh_token":
			return req, creds, &requestError{"UNSUPPORTED", "grant_type refresh_token is not supported"}
		default:
			return req, creds, &requestError{"UNSUPPORTED", "unsupported grant_type " + grant}
		}
	} else if user, password, ok := r.BasicAuth(); ok {
		creds = credentials{present: true, username: user, password: password}
	}
	req.Username = creds.username
	return req, creds, nil
}

// grants decides the access claim. Like real token servers it leaves out
// what the caller may not have instead of failing, so the registry answers
// 401 insufficient_scope later.
func (ti *TokenIssuer) grants(user string, scopes []string) []resourceActions {
	access := []resourceActions{} // "access":[] rather than null, as Docker Hub sends
	for _, scope := range scopes {
		typ, name, requested, ok := parseScope(scope)
		if !ok {
			continue
		}
		allowed := ti.allowedActions(user, typ, name)
		var actions []string
		for _, a := range requested {
			if slices.Contains(allowed, a) && !slices.Contains(actions, a) {
				actions = append(actions, a)
			}
		}
		if len(actions) > 0 {
			access = append(access, resourceActions{Type: typ, Name: name, Actions: actions})
		}
	}
	return access
}

func (ti *TokenIssuer) allowedActions(user, typ, name string) []string {
	switch {
	case typ == "registry" && name == "catalog":
		if user == AdminUser {
			return []string{"*"}
		}
		return nil
	case typ != "repository":
		return nil
	case user != "":
		return []string{"pull", "push", "delete", "*"}
	case ti.isPrivate(name):
		return nil
	default:
		return []string{"pull"}
	}
}

func (ti *TokenIssuer) isPrivate(repo string) bool {
	for _, pattern := range ti.privateRepos {
		if ok, _ := path.Match(pattern, repo); ok || pattern == repo {
			return true
		}
	}
	return false
}

// parseScope splits "type:name:actions". The name may itself contain a
// colon (a registry host with port), so type ends at the first colon and
// actions start after the last one.
func parseScope(scope string) (typ, name string, actions []string, ok bool) {
	first := strings.Index(scope, ":")
	last := strings.LastIndex(scope, ":")
	if first <= 0 || last <= first+1 || last == len(scope)-1 {
		return "", "", nil, false
	}
	return scope[:first], scope[first+1 : last], strings.Split(scope[last+1:], ","), true
}
