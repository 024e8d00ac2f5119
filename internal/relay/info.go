package relay

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/registry-relay/registry-relay/internal/access"
	"github.com/registry-relay/registry-relay/internal/oci"
)

// serveInfo answers GET / with what this host relays and how to pull
// through it: with a look-alike subdomain per registry, users ask.
func (rl *Relay) serveInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		oci.Err(oci.CodeUnsupported, "only GET and HEAD are supported").ServeHTTP(w, r)
		return
	}
	x := exchangeFrom(r.Context())
	if x.mirror != nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "registry-relay: this host mirrors every registry the relay serves\n\n"+
			"  docker pull %[1]s/gcr.io/distroless/static   (registry name as a path prefix)\n"+
			"  docker pull %[1]s/library/nginx              (no prefix: Docker Hub)\n"+
			"  Docker registry-mirrors, containerd hosts.toml (?ns=) and podman/CRI-O mirror\n"+
			"  locations (%[1]s/quay.io) point here too.\n", x.host)
		return
	}
	example := x.host + "/<repository>:<tag>"
	if x.route.Patch != nil {
		example = x.host + "/" + x.route.Patch("nginx") + ":latest (or " + x.host + "/nginx:latest)"
	}
	info := struct {
		Service  string `json:"service"`
		Route    string `json:"route"`
		Upstream string `json:"upstream"`
		Pull     string `json:"pull"`
	}{"registry-relay", x.route.Name, x.route.Upstream.String(), "docker pull " + example}
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "registry-relay: this host relays the %s route to %s\n\npull through it with:\n  %s\n",
		info.Route, info.Upstream, info.Pull)
}

// publicScheme is the scheme clients use to reach the relay, for the
// realms it hands out: forced by configuration, told by a trusted proxy,
// or seen on the connection.
func (rl *Relay) publicScheme(r *http.Request) string {
	if rl.opts.PublicScheme != "" {
		return strings.ToLower(rl.opts.PublicScheme)
	}
	if p := forwardedProto(r); p != "" && access.TrustedPeer(r, rl.opts.TrustedProxies) {
		return p
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

func forwardedProto(r *http.Request) string {
	v, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	switch v = strings.ToLower(strings.TrimSpace(v)); v {
	case "http", "https":
		return v
	}
	return ""
}
