package access

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// LoadUsers reads and parses the htpasswd file at path.
func LoadUsers(path string) (*Users, error) {
	// Stat before reading: a change between the two is seen at the next
	// check instead of being missed.
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	u, err := ParseHtpasswd(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	u.file = fi
	return u, nil
}

// sameVersion reports whether a and b describe the same version of a
// file. Kubernetes updates a mounted Secret by swapping in a new file,
// editors often do the same, and in-place writes change size or time.
func sameVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// UserCheckInterval is how often a UserFile looks at its file at most.
const UserCheckInterval = 5 * time.Second

// UserFile is an htpasswd file that is read again when it changes on
// disk, so accounts can be added and removed (a Kubernetes Secret update,
// an edit) without a restart. A version that fails to parse is logged
// and the previous users stay in force.
type UserFile struct {
	path  string
	log   *slog.Logger
	now   func() time.Time
	every time.Duration
	users atomic.Pointer[Users]

	mu       sync.Mutex
	checked  time.Time
	checking bool
	// failed is the version that last failed to load, owned by whoever
	// holds checking; it is logged once, not at every check.
	failed os.FileInfo
}

// UserFileOption adjusts a UserFile.
type UserFileOption func(*UserFile)

// WithUserClock makes the file read the time from now, for tests.
func WithUserClock(now func() time.Time) UserFileOption {
	return func(f *UserFile) { f.now = now }
}

// NewUserFile watches path, whose current contents loaded are (from
// LoadUsers).
func NewUserFile(path string, loaded *Users, log *slog.Logger, opts ...UserFileOption) *UserFile {
	f := &UserFile{path: path, log: log, now: time.Now, every: UserCheckInterval}
	for _, o := range opts {
		o(f)
	}
	f.checked = f.now()
	f.users.Store(loaded)
	return f
}

// Users returns the current users, first reading the file again if it is
// time to look and it changed. One caller reads at a time; the others go
// on with the users they have.
func (f *UserFile) Users() *Users {
	cur := f.users.Load()
	if !f.claimCheck() {
		return cur
	}
	defer f.endCheck()
	fi, err := os.Stat(f.path)
	if err != nil {
		f.log.Error("htpasswd file unreadable; keeping the loaded users", "var", "RELAY_HTPASSWD_FILE", "err", err)
		return cur
	}
	if sameVersion(fi, cur.file) || sameVersion(fi, f.failed) {
		return cur
	}
	next, err := LoadUsers(f.path)
	if err != nil {
		f.failed = fi
		f.log.Error("htpasswd file changed but does not load; keeping the previous users", "var", "RELAY_HTPASSWD_FILE", "err", err)
		return cur
	}
	f.users.Store(next)
	f.log.Info("htpasswd file reloaded", "var", "RELAY_HTPASSWD_FILE", "users", len(next.hashes))
	return next
}

func (f *UserFile) claimCheck() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.checking || now.Sub(f.checked) < f.every {
		return false
	}
	f.checked, f.checking = now, true
	return true
}

func (f *UserFile) endCheck() {
	f.mu.Lock()
	f.checking = false
	f.mu.Unlock()
}
