package app_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/registry-relay/registry-relay/internal/app"
	"github.com/registry-relay/registry-relay/internal/config"
)

// TestEphemeralTokenKeyWarns: without RELAY_TOKEN_KEY_FILE the relay says
// at start-up that its tokens verify on this process only.
func TestEphemeralTokenKeyWarns(t *testing.T) {
	dir := t.TempDir()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	htpasswd := filepath.Join(dir, "htpasswd")
	key := filepath.Join(dir, "key")
	for p, content := range map[string]string{htpasswd: "carol:" + string(hash) + "\n", key: strings.Repeat("k", 32)} {
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		environ map[string]string
		warn    bool
	}{
		{"no key file", map[string]string{"RELAY_HTPASSWD_FILE": htpasswd}, true},
		{"key file", map[string]string{"RELAY_HTPASSWD_FILE": htpasswd, "RELAY_TOKEN_KEY_FILE": key}, false},
		{"no accounts", map[string]string{}, false},
	} {
		cfg, err := config.Load(tc.environ)
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		if _, err := app.New(cfg, &logs); err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), `"level":"WARN"`) && strings.Contains(logs.String(), "this process only")
		if warned != tc.warn {
			t.Errorf("%s: warned=%v, want %v (log %s)", tc.name, warned, tc.warn, logs.String())
		}
	}
}
