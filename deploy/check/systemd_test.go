package check

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const unitFile = "deploy/caddy/registry-relay.service"

// unit is what the checks read from the systemd unit.
type unit struct {
	env         map[string]string // Environment= lines
	timeoutStop time.Duration
}

func readUnit(t *testing.T) unit {
	t.Helper()
	u := unit{env: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(readRepoFile(t, unitFile)))
	for sc.Scan() {
		key, value, _ := strings.Cut(sc.Text(), "=")
		switch key {
		case "Environment":
			// One unquoted assignment per line keeps this reader honest.
			name, v, ok := strings.Cut(value, "=")
			if !ok || strings.ContainsAny(value, "\"' \t") {
				t.Fatalf("%s: write Environment=NAME=value, one per line: %q", unitFile, sc.Text())
			}
			u.env[name] = v
		case "TimeoutStopSec":
			u.timeoutStop = duration(t, value)
		}
	}
	return u
}

// TestSystemdUnit: systemd accepts the unit, rates its sandboxing at most
// 2.0 ("OK") on its 0-10 exposure scale, and gives the relay time to drain.
func TestSystemdUnit(t *testing.T) {
	vars := readmeVars(t)
	u := readUnit(t)
	vars.checkKnown(t, unitFile, u.env)
	delay := duration(t, vars.effective(u.env, "RELAY_SHUTDOWN_DELAY"))
	grace := duration(t, vars.effective(u.env, "RELAY_SHUTDOWN_GRACE"))
	if u.timeoutStop <= delay+grace {
		t.Errorf("TimeoutStopSec=%s must exceed RELAY_SHUTDOWN_DELAY + RELAY_SHUTDOWN_GRACE = %s", u.timeoutStop, delay+grace)
	}
	startRelay(t, u.env) // the relay accepts the unit's settings

	analyze := needTool(t, "systemd-analyze", "apt-get install systemd")
	// verify wants ExecStart to exist: point it at the binary under test.
	text := strings.ReplaceAll(string(readRepoFile(t, unitFile)), "ExecStart=/usr/local/bin/registry-relay", "ExecStart="+relayBin)
	path := filepath.Join(t.TempDir(), filepath.Base(unitFile))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(analyze, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	if out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", path).CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 2.0: %v\n%s", err, out)
	}
}
