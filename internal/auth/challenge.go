// Package auth handles registry authentication as seen by a relay: parsing
// and rewriting WWW-Authenticate challenges, and proxying token requests to
// the realms that upstreams advertise.
package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Param is one auth-param of a challenge. A token68 value (RFC 7235) is
// kept as a Param with an empty Key.
type Param struct {
	Key   string
	Value string
}

// Challenge is one challenge of a WWW-Authenticate header.
type Challenge struct {
	Scheme string
	Params []Param
}

// Get returns the value of the first parameter named key (case-insensitive).
func (c Challenge) Get(key string) string {
	for _, p := range c.Params {
		if strings.EqualFold(p.Key, key) {
			return p.Value
		}
	}
	return ""
}

// Set replaces the value of parameter key, or appends it.
func (c *Challenge) Set(key, value string) {
	for i, p := range c.Params {
		if strings.EqualFold(p.Key, key) {
			c.Params[i].Value = value
			return
		}
	}
	c.Params = append(c.Params, Param{Key: key, Value: value})
}

// String renders the challenge with every parameter value quoted.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	for i, p := range c.Params {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		if p.Key == "" {
			b.WriteString(p.Value)
			continue
		}
		b.WriteString(p.Key)
		b.WriteString(`="`)
		b.WriteString(strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(p.Value))
		b.WriteByte('"')
	}
	return b.String()
}

// Limits that keep a hostile upstream header from costing much.
const (
	maxHeaderLen  = 16 << 10
	maxChallenges = 16
	maxParams     = 32
)

// ErrMalformed is returned for headers that do not follow RFC 7235.
var ErrMalformed = errors.New("malformed WWW-Authenticate header")

// ParseChallenges parses a WWW-Authenticate header value holding one or
// more challenges (`Basic realm="x", Bearer realm="y",scope="a:b:pull,push"`).
// Quoted strings may contain commas and backslash escapes.
func ParseChallenges(h string) ([]Challenge, error) {
	if len(h) > maxHeaderLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, maxHeaderLen)
	}
	s := &scanner{s: h}
	var out []Challenge
	for {
		s.skipListSeparators()
		if s.done() {
			break
		}
		scheme := s.token()
		if scheme == "" {
			return nil, fmt.Errorf("%w: expected auth scheme at offset %d", ErrMalformed, s.i)
		}
		if len(out) == maxChallenges {
			return nil, fmt.Errorf("%w: more than %d challenges", ErrMalformed, maxChallenges)
		}
		c := Challenge{Scheme: scheme}
		if err := s.params(&c); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no challenge", ErrMalformed)
	}
	return out, nil
}

// params reads the auth-params after a scheme, stopping before the scheme
// of the next challenge.
func (s *scanner) params(c *Challenge) error {
	s.skipSpace()
	if s.peek(',') {
		return nil // a challenge without parameters: "Negotiate, Bearer realm=…" (RFC 7235 §4.1)
	}
	for !s.done() {
		mark := s.i
		key := s.token()
		s.skipSpace()
		switch {
		case key != "" && s.peek('='):
			pad := s.eat('=')
			s.skipSpace()
			if pad > 1 || s.done() || s.peek(',') {
				// token68 ending in '=' padding, e.g. "Negotiate abc==".
				c.Params = append(c.Params, Param{Value: key + strings.Repeat("=", pad)})
				break
			}
			v, err := s.value()
			if err != nil {
				return err
			}
			c.Params = append(c.Params, Param{Key: key, Value: v})
		case key != "" && len(c.Params) == 0 && (s.done() || s.peek(',')):
			c.Params = append(c.Params, Param{Value: key}) // bare token68
		case key != "" && len(c.Params) > 0:
			s.i = mark // the next challenge's scheme
			return nil
		default:
			return fmt.Errorf("%w: unexpected %q at offset %d", ErrMalformed, s.rest(), s.i)
		}
		if len(c.Params) > maxParams {
			return fmt.Errorf("%w: more than %d parameters", ErrMalformed, maxParams)
		}
		s.skipSpace()
		if !s.done() && !s.peek(',') {
			return fmt.Errorf("%w: expected ',' at offset %d", ErrMalformed, s.i)
		}
		s.skipListSeparators()
	}
	return nil
}
