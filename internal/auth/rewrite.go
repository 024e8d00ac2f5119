package auth

import (
	"strings"

	"github.com/registry-relay/registry-relay/internal/registry"
)

// RewriteResult is the outcome of rewriting one WWW-Authenticate header.
type RewriteResult struct {
	// Headers are the values to send to the client, one challenge each:
	// Docker's and containerd's parsers read a single challenge per header
	// line, so "Basic …, Bearer …" is split.
	Headers []string
	// Realms are the upstream realms that were replaced, in order.
	Realms []string
	// Services are the service parameters of those challenges.
	Services []string
}

// RewriteBearerRealm replaces the realm of every Bearer challenge in header
// with relayRealm(upstream realm), keeping service, scope and any other
// parameter; when scopeName is not nil it maps the repository names in the
// scope to the client's view (the mirror host's "gcr.io/" prefix). Other
// schemes (Basic) pass unchanged: their realm is only a label.
func RewriteBearerRealm(header string, relayRealm, scopeName func(string) string) (RewriteResult, error) {
	cs, err := ParseChallenges(header)
	if err != nil {
		return RewriteResult{}, err
	}
	res := RewriteResult{Headers: make([]string, len(cs))}
	for i := range cs {
		c := &cs[i]
		if strings.EqualFold(c.Scheme, "Bearer") {
			if realm := c.Get("realm"); realm != "" {
				res.Realms = append(res.Realms, realm)
				res.Services = append(res.Services, c.Get("service"))
				c.Set("realm", relayRealm(realm))
			}
			if scope := c.Get("scope"); scope != "" && scopeName != nil {
				c.Set("scope", registry.MapScopeNames(scope, scopeName))
			}
		}
		res.Headers[i] = c.String()
	}
	return res, nil
}
