package httpbody

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	for _, tc := range []struct {
		body    string
		limit   int64
		wantErr error
	}{
		{"", 4, nil},
		{"abcd", 4, nil},
		{"abcde", 4, ErrTooLarge},
	} {
		got, err := Read(strings.NewReader(tc.body), tc.limit)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("Read(%q, %d): err = %v, want %v", tc.body, tc.limit, err, tc.wantErr)
		}
		if err == nil && string(got) != tc.body {
			t.Errorf("Read(%q, %d) = %q", tc.body, tc.limit, got)
		}
	}
	if _, err := Read(io.MultiReader(strings.NewReader("ab"), failing{}), 10); err == nil || errors.Is(err, ErrTooLarge) {
		t.Errorf("a failed read: err = %v, want the reader's error", err)
	}
}

type failing struct{}

func (failing) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

type countingBody struct {
	r      io.Reader
	read   int
	closed bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.read += n
	return n, err
}

func (b *countingBody) Close() error { b.closed = true; return nil }

// TestDrainIsBounded: a short body is read to its end (the connection is
// reusable); an endless one is read only up to MaxError; both are closed.
func TestDrainIsBounded(t *testing.T) {
	short := &countingBody{r: strings.NewReader("not found")}
	Drain(short)
	if short.read != len("not found") || !short.closed {
		t.Errorf("short body: read %d, closed %v", short.read, short.closed)
	}
	endless := &countingBody{r: zeros{}}
	Drain(endless)
	if endless.read != MaxError || !endless.closed {
		t.Errorf("endless body: read %d (want %d), closed %v", endless.read, MaxError, endless.closed)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
