// Package httpbody bounds what the relay reads of bodies that are not
// blobs: upstream error answers, token responses, bodies it throws away.
// It imports nothing of ours, so auth and relay share it.
package httpbody

import (
	"errors"
	"fmt"
	"io"
)

// MaxError bounds an error answer's body, and what Drain reads of an
// unwanted one: registry errors are a few hundred bytes of JSON, or an
// HTML page the relay replaces.
const MaxError = 64 << 10

// ErrTooLarge is what Read returns for a body longer than its bound.
var ErrTooLarge = errors.New("body over its size bound")

// Read reads r whole if it holds at most limit bytes; a longer body is
// ErrTooLarge, never a silently truncated one.
func Read(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w (%d bytes)", ErrTooLarge, limit)
	}
	return b, nil
}

// Drain reads what is left of an unwanted body, up to MaxError, so its
// connection can be reused, then closes it. A longer body costs the
// connection, not an unbounded read.
func Drain(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, MaxError))
	body.Close()
}
