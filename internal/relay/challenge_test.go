package relay

import (
	"testing"

	"github.com/registry-relay/registry-relay/internal/auth"
)

// TestRelayChallengeQuotesEveryValue: whatever the repository name holds
// (quotes, commas, backslashes, what looks like another parameter or
// challenge), the relay's challenge parses back to one Bearer challenge
// with its realm, service and scope intact.
func TestRelayChallengeQuotesEveryValue(t *testing.T) {
	const realm = "https://dhcr.test/token/dockerhub."
	for _, name := range []string{
		"library/nginx",
		`evil",realm="https://attacker.example/token`,
		`a\"b`,
		`x", Basic realm="y`,
		"a,b c=d",
		`trailing\`,
	} {
		h := relayChallenge(realm, "docker.io/", name)
		cs, err := auth.ParseChallenges(h)
		if err != nil || len(cs) != 1 {
			t.Errorf("name %q: %s parses to %v, %v; want one challenge", name, h, cs, err)
			continue
		}
		c := cs[0]
		if c.Scheme != "Bearer" || len(c.Params) != 3 || c.Get("realm") != realm ||
			c.Get("service") != auth.RelayService || c.Get("scope") != "repository:docker.io/"+name+":pull" {
			t.Errorf("name %q: %s parses to %#v", name, h, c)
		}
	}
	if h := relayChallenge(realm, "docker.io/", ""); h != `Bearer realm="`+realm+`",service="`+auth.RelayService+`"` {
		t.Errorf("API root challenge = %s, want no scope", h)
	}
}
