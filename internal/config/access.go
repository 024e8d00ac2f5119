package config

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"strings"

	"github.com/registry-relay/registry-relay/internal/access"
)

// loadAccess checks the global limits and reads the client credentials.
func (c *Config) loadAccess() error {
	switch {
	case c.RateLimit < 0:
		return fmt.Errorf("RELAY_RATE_LIMIT=%v: must not be negative", c.RateLimit)
	case c.RateBurst < 1:
		return fmt.Errorf("RELAY_RATE_BURST=%d: must be at least 1", c.RateBurst)
	case c.MaxTransfersPerIP < 0:
		return fmt.Errorf("RELAY_MAX_TRANSFERS_PER_IP=%d: must not be negative", c.MaxTransfersPerIP)
	case c.ClientTokenTTL <= 0:
		return fmt.Errorf("RELAY_CLIENT_TOKEN_TTL=%s: must be positive", c.ClientTokenTTL)
	}
	if c.HtpasswdFile == "" {
		if c.TokenKeyFile != "" {
			return fmt.Errorf("RELAY_TOKEN_KEY_FILE is set but RELAY_HTPASSWD_FILE is not: client authentication is off")
		}
		return nil
	}
	var err error
	if c.ClientUsers, err = access.LoadUsers(c.HtpasswdFile); err != nil {
		return fmt.Errorf("RELAY_HTPASSWD_FILE: %w", err)
	}
	return c.loadTokenKey()
}

// minTokenSecret is the least secret RELAY_TOKEN_KEY_FILE must hold.
const minTokenSecret = 32

// loadTokenKey reads the secret the relay's client tokens are sealed with
// (access.NewSigner derives the AEAD key from it). Without
// RELAY_TOKEN_KEY_FILE it is random, made for this process: its tokens
// verify here only, and a restart logs every client out (app warns).
func (c *Config) loadTokenKey() error {
	if c.TokenKeyFile == "" {
		c.ClientTokenKey = make([]byte, minTokenSecret)
		_, _ = rand.Read(c.ClientTokenKey) // crypto/rand.Read never fails
		c.EphemeralTokenKey = true
		return nil
	}
	key, err := os.ReadFile(c.TokenKeyFile)
	if err != nil {
		return fmt.Errorf("RELAY_TOKEN_KEY_FILE: %w", err)
	}
	// Trimmed, so replicas agree whether or not a file ends in a newline.
	key = bytes.TrimSpace(key)
	if len(key) < minTokenSecret {
		return fmt.Errorf("RELAY_TOKEN_KEY_FILE %s: want at least %d bytes of secret, got %d", c.TokenKeyFile, minTokenSecret, len(key))
	}
	c.ClientTokenKey = key
	return nil
}

// routeAccess reads a route's repository and client lists.
func routeAccess(prefix string, re routeEnv) (access.RoutePolicy, error) {
	var pol access.RoutePolicy
	for _, list := range [][]string{re.AllowRepos, re.DenyRepos} {
		for _, p := range list {
			if err := access.ValidatePattern(strings.TrimSpace(p)); err != nil {
				return pol, fmt.Errorf("%sALLOW_REPOS/%sDENY_REPOS: %q: %w", prefix, prefix, p, err)
			}
		}
	}
	pol.Repos = access.RepoPolicy{Allow: trimAll(re.AllowRepos), Deny: trimAll(re.DenyRepos)}
	for _, s := range trimAll(re.AllowCIDRs) {
		p, err := access.ParsePrefix(s)
		if err != nil {
			return pol, fmt.Errorf("%sALLOW_CIDRS: %w", prefix, err)
		}
		pol.Clients = append(pol.Clients, p)
	}
	return pol, nil
}

func trimAll(in []string) []string {
	var out []string
	for _, s := range in {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}
