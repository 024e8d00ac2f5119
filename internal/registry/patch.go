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

// DockerHubScope patches every repository name in a token scope string. One
// string may hold several space-separated scopes (the OAuth2 form), each
// "type[(class)]:name:actions"; others ("registry:catalog:*") are kept.
func DockerHubScope(scope string) string {
	fields := strings.Split(scope, " ")
	for i, f := range fields {
		fields[i] = patchOneScope(f)
	}
	return strings.Join(fields, " ")
}

func patchOneScope(s string) string {
	typ, rest, ok := strings.Cut(s, ":")
	if !ok || (typ != "repository" && !strings.HasPrefix(typ, "repository(")) {
		return s
	}
	i := strings.LastIndex(rest, ":")
	if i < 0 {
		return s
	}
	return typ + ":" + DockerHubRepository(rest[:i]) + rest[i:]
}
