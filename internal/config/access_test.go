package config_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-relay/registry-relay/internal/config"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTokenKey(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	htpasswd := writeFile(t, "htpasswd", "carol:"+string(hash)+"\n")

	a := load(t, map[string]string{"RELAY_HTPASSWD_FILE": htpasswd})
	b := load(t, map[string]string{"RELAY_HTPASSWD_FILE": htpasswd})
	if !a.EphemeralTokenKey || len(a.ClientTokenKey) != 32 || bytes.Equal(a.ClientTokenKey, b.ClientTokenKey) {
		t.Errorf("without RELAY_TOKEN_KEY_FILE: ephemeral=%v, %d bytes, equal across loads=%v; want a random 32-byte key per process",
			a.EphemeralTokenKey, len(a.ClientTokenKey), bytes.Equal(a.ClientTokenKey, b.ClientTokenKey))
	}
	if bytes.Contains(a.ClientTokenKey, hash[:16]) {
		t.Error("the key shows the htpasswd file")
	}

	secret := strings.Repeat("k", 40)
	withFile := load(t, map[string]string{"RELAY_HTPASSWD_FILE": htpasswd, "RELAY_TOKEN_KEY_FILE": writeFile(t, "key", secret+"\n")})
	if withFile.EphemeralTokenKey || string(withFile.ClientTokenKey) != secret {
		t.Errorf("RELAY_TOKEN_KEY_FILE: ephemeral=%v key %q, want the file's secret, trimmed", withFile.EphemeralTokenKey, withFile.ClientTokenKey)
	}
	if withFile.ClientUsers == nil || !withFile.ClientUsers.Has("carol") {
		t.Error("htpasswd users not loaded")
	}
}

func TestAccessFileErrors(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	htpasswd := writeFile(t, "htpasswd", "carol:"+string(hash)+"\n")
	for _, tc := range []struct {
		name    string
		environ map[string]string
		want    string
	}{
		{"short key", map[string]string{"RELAY_HTPASSWD_FILE": htpasswd, "RELAY_TOKEN_KEY_FILE": writeFile(t, "key", strings.Repeat("k", 31)+"\n\n")}, "RELAY_TOKEN_KEY_FILE"},
		{"missing key", map[string]string{"RELAY_HTPASSWD_FILE": htpasswd, "RELAY_TOKEN_KEY_FILE": "/nonexistent/key"}, "RELAY_TOKEN_KEY_FILE"},
		{"key without accounts", map[string]string{"RELAY_TOKEN_KEY_FILE": writeFile(t, "key", strings.Repeat("k", 40))}, "RELAY_HTPASSWD_FILE is not"},
		{"cost 31", map[string]string{"RELAY_HTPASSWD_FILE": writeFile(t, "h", "mallory:$2a$31$"+strings.Repeat("a", 53)+"\n")}, "RELAY_HTPASSWD_FILE"},
		{"missing htpasswd", map[string]string{"RELAY_HTPASSWD_FILE": "/nonexistent/htpasswd"}, "RELAY_HTPASSWD_FILE"},
	} {
		_, err := config.Load(tc.environ)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %s", tc.name, err, tc.want)
		}
	}
}
