package access

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// hashes caches test hashes: bcrypt at cost 10+ is slow even once.
var hashes sync.Map

func hashAt(t *testing.T, password string, cost int) string {
	t.Helper()
	key := fmt.Sprint(password, cost)
	if h, ok := hashes.Load(key); ok {
		return h.(string)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		t.Fatal(err)
	}
	hashes.Store(key, string(h))
	return string(h)
}

func TestHtpasswd(t *testing.T) {
	users, err := ParseHtpasswd([]byte("# comment\n\nalice:" + hashAt(t, "s3cret", bcrypt.MinCost) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !users.Verify("alice", "s3cret") || users.Verify("alice", "wrong") || users.Verify("bob", "s3cret") {
		t.Error("Verify misjudges")
	}
	if !users.Has("alice") || users.Has("bob") {
		t.Error("Has misjudges")
	}
}

func TestHtpasswdRefuses(t *testing.T) {
	// A cost-31 hash is refused on its header alone: nothing hashes at 31.
	cost31 := "$2a$31$" + strings.Repeat("a", 53)
	for _, tc := range []struct{ name, file, want string }{
		{"sha1", "bob:{SHA}fakeHash=", "bcrypt"},
		{"apr1", "bob:$apr1$salt$hash", "bcrypt"},
		{"no colon", "bob", "line 1"},
		{"no user", ":" + hashAt(t, "x", bcrypt.MinCost), "line 1"},
		{"empty", "# nobody\n", "no users"},
		{"cost 31", "alice:" + hashAt(t, "x", bcrypt.MinCost) + "\n\nmallory:" + cost31, "line 3 (mallory): bcrypt cost 31 is above the maximum of 14"},
		{"cost 15", "mallory:$2y$15$" + strings.Repeat("a", 53), "bcrypt cost 15"},
	} {
		if _, err := ParseHtpasswd([]byte(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestPadCosts(t *testing.T) {
	for _, tc := range []struct {
		cost, max int
		want      []int
	}{
		{10, 10, nil},
		{4, 5, []int{4}},
		{4, 7, []int{4, 5, 6}},
		{10, 12, []int{10, 11}},
		{12, 10, nil}, // never above the maximum
	} {
		got := padCosts(tc.cost, tc.max)
		if !slices.Equal(got, tc.want) {
			t.Errorf("padCosts(%d, %d) = %v, want %v", tc.cost, tc.max, got, tc.want)
		}
		work := 1 << tc.cost
		for _, c := range got {
			work += 1 << c
		}
		if tc.cost <= tc.max && work != 1<<tc.max {
			t.Errorf("cost %d padded to %d: work %d, want 2^%d", tc.cost, tc.max, work, tc.max)
		}
	}
}

// TestLoginWorkIsEven counts the bcrypt work of each login: known users
// with cheap or dear hashes and unknown users all spend 2^maxCost, and no
// hash is made after load.
func TestLoginWorkIsEven(t *testing.T) {
	generated := map[int]int{}
	generate := func(pw []byte, cost int) ([]byte, error) {
		generated[cost]++
		return bcrypt.GenerateFromPassword(pw, cost)
	}
	file := "cheap:" + hashAt(t, "a", 4) + "\nmid:" + hashAt(t, "b", 5) + "\ndear:" + hashAt(t, "c", 7) + "\n"
	u, err := parseHtpasswd([]byte(file), generate)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[int]int{4: 1, 5: 1, 6: 1, 7: 1}; fmt.Sprint(generated) != fmt.Sprint(want) {
		t.Fatalf("hashes made at load by cost: %v, want %v (dummy at 7, pads 4..6)", generated, want)
	}
	work := 0
	u.compare = func(hash, pw []byte) error {
		c, _ := bcrypt.Cost(hash)
		work += 1 << c
		return bcrypt.CompareHashAndPassword(hash, pw)
	}
	for _, tc := range []struct {
		user, password string
		want           bool
	}{
		{"cheap", "a", true}, {"cheap", "wrong", false}, {"mid", "b", true},
		{"dear", "c", true}, {"dear", "wrong", false}, {"nobody", "a", false}, {"", "", false},
	} {
		work = 0
		before := fmt.Sprint(generated)
		if got := u.Verify(tc.user, tc.password); got != tc.want {
			t.Errorf("Verify(%q, %q) = %v", tc.user, tc.password, got)
		}
		if work != 1<<7 {
			t.Errorf("Verify(%q): bcrypt work %d, want %d", tc.user, work, 1<<7)
		}
		if fmt.Sprint(generated) != before {
			t.Errorf("Verify(%q) made a hash", tc.user)
		}
	}
}
