package access

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// MaxBcryptCost is the highest bcrypt cost an htpasswd entry may have.
// Each step doubles the work of a login; at 31 one login pins a core for
// days, so such a file is refused rather than served.
const MaxBcryptCost = 14

// Users is an htpasswd file's bcrypt entries, with what makes a login of
// an unknown user, or of a known one with a cheaper hash, cost as much as
// one with the file's most expensive hash: timing does not tell who
// exists. Everything is computed at load; Verify never makes a hash.
type Users struct {
	hashes  map[string][]byte
	maxCost int
	// dummy is a hash at maxCost that unknown users are compared with.
	dummy []byte
	// pads holds one hash per cost below maxCost, see padCosts.
	pads map[int][]byte
	// compare is bcrypt.CompareHashAndPassword; tests count the work.
	compare func(hash, password []byte) error
	// file is the version of the file these users were read from.
	file os.FileInfo
}

// hashFunc is bcrypt.GenerateFromPassword; tests count its calls.
type hashFunc func(password []byte, cost int) ([]byte, error)

// ParseHtpasswd reads "user:$2y$..." lines (htpasswd -B); other hash
// schemes are refused: they are too weak to put on the internet.
func ParseHtpasswd(data []byte) (*Users, error) {
	return parseHtpasswd(data, bcrypt.GenerateFromPassword)
}

func parseHtpasswd(data []byte, generate hashFunc) (*Users, error) {
	u := &Users{hashes: map[string][]byte{}, maxCost: bcrypt.MinCost, compare: bcrypt.CompareHashAndPassword}
	minCost := MaxBcryptCost
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("line %d: want user:bcrypt-hash", n)
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): only bcrypt hashes are accepted (htpasswd -B): %w", n, user, err)
		}
		if cost > MaxBcryptCost {
			return nil, fmt.Errorf("line %d (%s): bcrypt cost %d is above the maximum of %d (htpasswd -B -C %d)", n, user, cost, MaxBcryptCost, MaxBcryptCost)
		}
		u.hashes[user] = []byte(hash)
		u.maxCost, minCost = max(u.maxCost, cost), min(minCost, cost)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(u.hashes) == 0 {
		return nil, fmt.Errorf("no users")
	}
	return u, u.precompute(minCost, generate)
}

// padPassword is what dummy and pad hashes hash; no password is compared
// with them to any end but spending time.
var padPassword = []byte("registry-relay timing pad")

func (u *Users) precompute(minCost int, generate hashFunc) error {
	var err error
	if u.dummy, err = generate(padPassword, u.maxCost); err != nil {
		return fmt.Errorf("making the unknown-user hash: %w", err)
	}
	u.pads = map[int][]byte{}
	for c := minCost; c < u.maxCost; c++ {
		if u.pads[c], err = generate(padPassword, c); err != nil {
			return fmt.Errorf("making the cost-%d timing pad: %w", c, err)
		}
	}
	return nil
}

// padCosts lists the pad hashes a login with a hash of cost compares
// against so that it costs what a hash of maxCost does: bcrypt work is
// 2^cost, and 2^c + (2^c + 2^(c+1) + … + 2^(maxCost-1)) = 2^maxCost.
func padCosts(cost, maxCost int) []int {
	var out []int
	for c := cost; c < maxCost; c++ {
		out = append(out, c)
	}
	return out
}

// Has reports whether user has an entry.
func (u *Users) Has(user string) bool {
	_, ok := u.hashes[user]
	return ok
}

// Verify checks a user's password, spending the work of one comparison
// at the file's highest cost whoever asks.
func (u *Users) Verify(user, password string) bool {
	hash, ok := u.hashes[user]
	if !ok {
		_ = u.compare(u.dummy, []byte(password))
		return false
	}
	good := u.compare(hash, []byte(password)) == nil
	cost, _ := bcrypt.Cost(hash)
	for _, c := range padCosts(cost, u.maxCost) {
		_ = u.compare(u.pads[c], []byte(password))
	}
	return good
}
