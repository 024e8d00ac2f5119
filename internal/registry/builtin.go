package registry

// Builtin is the static description of one of the registries the relay
// knows out of the box. Facts come from docs/registries (auth realms and
// redirect targets observed on the real services).
type Builtin struct {
	Name      string // route name, also the metrics label
	EnvPrefix string // DOCKERHUB -> DOCKERHUB_ACCESS_DOMAIN, DOCKERHUB_UPSTREAM ...
	Subdomain string // default access domain is Subdomain + "." + base
	Upstream  string
	// Registry is the name clients give the registry in image references
	// and containerd's ?ns= parameter ("docker.io").
	Registry string
	// AuthHosts are the token realms' hosts besides the upstream host.
	AuthHosts []string
	// CredentialHosts are redirect targets that need the client's token.
	CredentialHosts []string
	LibraryPatch    bool
}

// Builtins lists the eleven built-in routes in documentation order.
var Builtins = []Builtin{
	{Name: "dockerhub", EnvPrefix: "DOCKERHUB", Subdomain: "dhcr", Upstream: "https://registry-1.docker.io", Registry: "docker.io",
		AuthHosts: []string{"auth.docker.io", "auth.ipv6.docker.com"}, LibraryPatch: true},
	{Name: "k8s", EnvPrefix: "K8S", Subdomain: "k8s", Upstream: "https://registry.k8s.io", Registry: "registry.k8s.io"},
	{Name: "quay", EnvPrefix: "QUAY", Subdomain: "quay", Upstream: "https://quay.io", Registry: "quay.io"},
	{Name: "gcr", EnvPrefix: "GCR", Subdomain: "gcr", Upstream: "https://gcr.io", Registry: "gcr.io"},
	{Name: "ghcr", EnvPrefix: "GHCR", Subdomain: "ghcr", Upstream: "https://ghcr.io", Registry: "ghcr.io"},
	{Name: "elastic", EnvPrefix: "ELASTIC", Subdomain: "elastic", Upstream: "https://docker.elastic.co", Registry: "docker.elastic.co",
		AuthHosts: []string{"docker-auth.elastic.co"}},
	{Name: "crunchydata", EnvPrefix: "CRUNCHYDATA", Subdomain: "crunchydata", Upstream: "https://registry.developers.crunchydata.com",
		Registry:  "registry.developers.crunchydata.com",
		AuthHosts: []string{"registry-auth.developers.crunchydata.com"}},
	{Name: "nvcr", EnvPrefix: "NVCR", Subdomain: "nvcr", Upstream: "https://nvcr.io", Registry: "nvcr.io",
		AuthHosts: []string{"authn.nvidia.com"}},
	// lscr.io is served by GitHub: its realm lives on ghcr.io and pulls are
	// redirected there, still needing the ghcr.io token.
	{Name: "lscr", EnvPrefix: "LSCR", Subdomain: "lscr", Upstream: "https://lscr.io", Registry: "lscr.io",
		AuthHosts: []string{"ghcr.io"}, CredentialHosts: []string{"ghcr.io"}},
	{Name: "mcr", EnvPrefix: "MCR", Subdomain: "mcr", Upstream: "https://mcr.microsoft.com", Registry: "mcr.microsoft.com"},
	{Name: "gitlab", EnvPrefix: "GITLAB", Subdomain: "gitlab", Upstream: "https://registry.gitlab.com", Registry: "registry.gitlab.com",
		AuthHosts: []string{"gitlab.com"}},
}
