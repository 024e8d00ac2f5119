package access

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func TestUserFileReloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	write := func(content string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	alice := "alice:" + hashAt(t, "a", bcrypt.MinCost) + "\n"
	bob := "bob:" + hashAt(t, "b", bcrypt.MinCost) + "\n"
	mod := time.Unix(1_700_000_000, 0)
	write(alice+bob, mod)
	loaded, err := LoadUsers(path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	var logs bytes.Buffer
	f := NewUserFile(path, loaded, slog.New(slog.NewTextHandler(&logs, nil)), WithUserClock(func() time.Time { return now }))
	has := func(user string) bool { return f.Users().Has(user) }

	write(alice, mod.Add(time.Second)) // bob removed
	if !has("bob") {
		t.Fatal("the file was read again before the check interval passed")
	}
	now = now.Add(UserCheckInterval)
	if has("bob") || !has("alice") {
		t.Fatal("bob's removal not picked up after the check interval")
	}

	write("alice:{SHA}broken\n", mod.Add(2*time.Second))
	now = now.Add(UserCheckInterval)
	if !has("alice") {
		t.Fatal("a file that does not parse replaced the users")
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "bcrypt") {
		t.Fatalf("the failed reload was not logged: %s", logs.String())
	}
	errors := strings.Count(logs.String(), "level=ERROR")
	now = now.Add(UserCheckInterval)
	has("alice")
	if strings.Count(logs.String(), "level=ERROR") != errors {
		t.Error("the same broken version was logged again")
	}

	write(bob, mod.Add(3*time.Second)) // fixed: only bob
	now = now.Add(UserCheckInterval)
	if !has("bob") || has("alice") {
		t.Fatal("the fixed file was not loaded")
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	now = now.Add(UserCheckInterval)
	if !has("bob") {
		t.Fatal("a vanished file dropped the users")
	}
}

// TestUserFileSecretSwap mimics a Kubernetes Secret update: the mounted
// name becomes a symlink to a new file with the same size and time.
func TestUserFileSecretSwap(t *testing.T) {
	dir := t.TempDir()
	mod := time.Unix(1_700_000_000, 0)
	for name, user := range map[string]string{"v1": "alice", "v2": "carol"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(user+":"+hashAt(t, "a", bcrypt.MinCost)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	link := filepath.Join(dir, "htpasswd")
	if err := os.Symlink("v1", link); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadUsers(link)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_000, 0)
	f := NewUserFile(link, loaded, slog.New(slog.DiscardHandler), WithUserClock(func() time.Time { return now }))
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("v2", link); err != nil {
		t.Fatal(err)
	}
	now = now.Add(UserCheckInterval)
	if u := f.Users(); !u.Has("carol") || u.Has("alice") {
		t.Fatal("the swapped-in file was not loaded")
	}
}
