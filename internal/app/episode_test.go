package app

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestFaultEpisodeLogsOnce: a store that fails every fill is logged once
// a minute, with the count of what went unlogged, not once a fill.
func TestFaultEpisodeLogsOnce(t *testing.T) {
	var out strings.Builder
	e := &faultEpisode{log: slog.New(slog.NewTextHandler(&out, nil)), every: time.Hour}
	for range 5 {
		e.report("sha256:x", errors.New("store down"))
	}
	if n := strings.Count(out.String(), "could not be stored"); n != 1 {
		t.Fatalf("%d log lines for one episode:\n%s", n, out.String())
	}
	e.last = time.Now().Add(-2 * time.Hour)
	e.report("sha256:y", errors.New("store down"))
	if !strings.Contains(out.String(), "unlogged_since_last=4") {
		t.Errorf("the next line does not count the unlogged failures:\n%s", out.String())
	}
}
