package registry

import "strings"

// Builtin is the static description of one of the registries the relay
// knows out of the box. Auth and credential hosts are the token realms and
// redirect targets observed on the real services.
type Builtin struct {
	Name      string // route name, also the metrics label; EnvPrefix derives from it
	Subdomain string // default access domain is Subdomain + "." + base
	Upstream  string
	// Registry is the name clients give the registry in image references
	// and containerd's ?ns= parameter ("docker.io").
	Registry string
	// AuthHosts are the token realms' hosts besides the upstream host.
	AuthHosts []string
	// CredentialHosts are redirect targets that need the client's token.
	CredentialHosts []string
	// Patch maps a client's repository name to the upstream's; nil keeps
	// it. Docker Hub's is DockerHubRepository (its implicit "library/").
	Patch func(name string) string
}

// EnvPrefix is the prefix of the route's variables: "dockerhub" reads
// DOCKERHUB_ACCESS_DOMAIN, DOCKERHUB_UPSTREAM, ...
func (b Builtin) EnvPrefix() string { return strings.ToUpper(b.Name) }

// Builtins lists the built-in routes in documentation order. It is the one
// list of them: to add a registry, add an entry here and run
// `make deploy-check`, which compares the README, docs/deployment.md,
// examples/ and deploy/ with the routes the relay builds from this table
// and names every line still missing.
var Builtins = []Builtin{
	{Name: "dockerhub", Subdomain: "dhcr", Upstream: "https://registry-1.docker.io", Registry: "docker.io",
		AuthHosts: []string{"auth.docker.io", "auth.ipv6.docker.com"}, Patch: DockerHubRepository},
	{Name: "k8s", Subdomain: "k8s", Upstream: "https://registry.k8s.io", Registry: "registry.k8s.io"},
	{Name: "quay", Subdomain: "quay", Upstream: "https://quay.io", Registry: "quay.io"},
	{Name: "gcr", Subdomain: "gcr", Upstream: "https://gcr.io", Registry: "gcr.io"},
	{Name: "ghcr", Subdomain: "ghcr", Upstream: "https://ghcr.io", Registry: "ghcr.io"},
	{Name: "elastic", Subdomain: "elastic", Upstream: "https://docker.elastic.co", Registry: "docker.elastic.co",
		AuthHosts: []string{"docker-auth.elastic.co"}},
	{Name: "crunchydata", Subdomain: "crunchydata", Upstream: "https://registry.developers.crunchydata.com",
		Registry:  "registry.developers.crunchydata.com",
		AuthHosts: []string{"registry-auth.developers.crunchydata.com"}},
	{Name: "nvcr", Subdomain: "nvcr", Upstream: "https://nvcr.io", Registry: "nvcr.io",
		AuthHosts: []string{"authn.nvidia.com"}},
	// lscr.io is served by GitHub: its realm lives on ghcr.io and pulls are
	// redirected there, still needing the ghcr.io token.
	{Name: "lscr", Subdomain: "lscr", Upstream: "https://lscr.io", Registry: "lscr.io",
		AuthHosts: []string{"ghcr.io"}, CredentialHosts: []string{"ghcr.io"}},
	{Name: "mcr", Subdomain: "mcr", Upstream: "https://mcr.microsoft.com", Registry: "mcr.microsoft.com"},
	{Name: "gitlab", Subdomain: "gitlab", Upstream: "https://registry.gitlab.com", Registry: "registry.gitlab.com",
		AuthHosts: []string{"gitlab.com"}},
}
