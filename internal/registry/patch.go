package registry

import "strings"

// DockerHubRepository inserts Docker Hub's implicit "library/" namespace:
// "nginx" is really "library/nginx", and registry-1.docker.io only answers
// to the full name.
func DockerHubRepository(name string) string {
	if name == "" || strings.Contains(name, "/") {
		return name
	}
	return "library/" + name
}

// MapScopeNames applies fn to the repository name of every repository
// scope in a token scope string. One string may hold several
// space-separated scopes (the OAuth2 form), each
// "type[(class)]:name:actions"; others ("registry:catalog:*") are kept.
func MapScopeNames(scope string, fn func(string) string) string {
	// Split as FilterScopes splits, on any white space: a scope that one
	// reads as two and the other as one would be mapped and judged apart.
	fields := strings.Fields(scope)
	for i, f := range fields {
		if name, ok := ScopeRepository(f); ok {
			typ, _, _ := strings.Cut(f, ":")
			fields[i] = typ + ":" + fn(name) + f[len(typ)+1+len(name):]
		}
	}
	return strings.Join(fields, " ")
}

// ScopeRepository returns the repository name of one
// "repository[(class)]:name:actions" scope.
func ScopeRepository(scope string) (string, bool) {
	typ, rest, ok := strings.Cut(scope, ":")
	if !ok || (typ != "repository" && !strings.HasPrefix(typ, "repository(")) {
		return "", false
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return "", false
	}
	return rest[:i], true
}

// FilterScopes drops the repository scopes of a scope value whose name
// keep refuses, and anything that only looks like one ("Repository:x:pull",
// "repository:x"), which a lenient token service might still grant;
// other scopes (registry:catalog:*) stay.
func FilterScopes(scope string, keep func(string) bool) string {
	var out []string
	for _, f := range strings.Fields(scope) {
		name, ok := ScopeRepository(f)
		typ, _, _ := strings.Cut(f, ":")
		switch {
		case ok && !keep(name):
			continue
		case !ok && strings.HasPrefix(strings.ToLower(typ), "repository"):
			continue
		}
		out = append(out, f)
	}
	return strings.Join(out, " ")
}
