package auth

import "fmt"

// scanner walks a header value byte by byte; RFC 7230 tokens and quoted
// strings are ASCII, so bytes are enough.
type scanner struct {
	s string
	i int
}

func (s *scanner) done() bool          { return s.i >= len(s.s) }
func (s *scanner) peek(c byte) bool    { return s.i < len(s.s) && s.s[s.i] == c }
func (s *scanner) rest() string        { return s.s[s.i:min(len(s.s), s.i+16)] }
func (s *scanner) skipSpace()          { s.skip(" \t") }
func (s *scanner) skipListSeparators() { s.skip(" \t,") }

func (s *scanner) skip(set string) {
	for s.i < len(s.s) && containsByte(set, s.s[s.i]) {
		s.i++
	}
}

// eat consumes a run of c and returns its length.
func (s *scanner) eat(c byte) int {
	n := 0
	for s.peek(c) {
		s.i++
		n++
	}
	return n
}

// token reads an RFC 7230 token (plus '/' which token68 allows).
func (s *scanner) token() string {
	start := s.i
	for s.i < len(s.s) && isTokenChar(s.s[s.i]) {
		s.i++
	}
	return s.s[start:s.i]
}

// value reads a token or a quoted string with backslash escapes.
func (s *scanner) value() (string, error) {
	if !s.peek('"') {
		if t := s.token(); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("%w: expected value at offset %d", ErrMalformed, s.i)
	}
	s.i++
	buf := make([]byte, 0, 64)
	for s.i < len(s.s) {
		c := s.s[s.i]
		s.i++
		switch c {
		case '"':
			return string(buf), nil
		case '\\':
			if s.i == len(s.s) {
				return "", fmt.Errorf("%w: dangling escape", ErrMalformed)
			}
			buf = append(buf, s.s[s.i])
			s.i++
		default:
			buf = append(buf, c)
		}
	}
	return "", fmt.Errorf("%w: unterminated quoted string", ErrMalformed)
}

func isTokenChar(c byte) bool {
	if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
		return true
	}
	return containsByte("!#$%&'*+-.^_`|~/", c)
}

func containsByte(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}
