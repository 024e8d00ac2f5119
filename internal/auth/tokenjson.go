package auth

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// MaxTokenBody bounds a token service's answer, read whole: tokens are a
// few KiB of JSON (a JWT with its certificate chain at most).
const MaxTokenBody = 1 << 20

// defaultTokenTTL is the distribution spec's token lifetime when the
// token service names none.
const defaultTokenTTL = 60 * time.Second

// tokenResponse is a token service's answer (distribution's token spec),
// with OAuth2's access_token beside token: Docker clients read the one,
// OAuth2 clients the other.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token,omitempty"`
	ExpiresIn   int    `json:"expires_in,omitempty"`
	IssuedAt    string `json:"issued_at,omitempty"`
}

// writeToken answers a token request with a token the relay hands out
// itself and the lifetime it is really good for.
func writeToken(w http.ResponseWriter, token string, ttl time.Duration) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(tokenResponse{
		Token: token, AccessToken: token,
		ExpiresIn: int(ttl.Seconds()), IssuedAt: time.Now().UTC().Format(time.RFC3339),
	})
}

// ParseToken reads a token service's answer (read whole, up to
// MaxTokenBody): "token" or, failing that, "access_token", and its
// lifetime, the spec's default of 60 s when "expires_in" names none.
func ParseToken(body []byte) (string, time.Duration, error) {
	var tr tokenResponse
	if err := json.NewDecoder(bytes.NewReader(body)).Decode(&tr); err != nil {
		return "", 0, fmt.Errorf("token response: %w", err)
	}
	tok := cmp.Or(tr.Token, tr.AccessToken)
	if tok == "" {
		return "", 0, fmt.Errorf("token response has no token")
	}
	ttl := defaultTokenTTL
	if tr.ExpiresIn > 0 {
		ttl = time.Duration(tr.ExpiresIn) * time.Second
	}
	return tok, ttl, nil
}
