package relaytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"time"
)

// resourceActions is one entry of the "access" claim defined by the Docker
// token spec and parsed by distribution's registry/auth/token.ResourceActions.
type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// claimSet mirrors distribution's token.ClaimSet. Times are Unix seconds.
type claimSet struct {
	Issuer     string            `json:"iss"`
	Subject    string            `json:"sub"`
	Audience   string            `json:"aud"`
	Expiration int64             `json:"exp"`
	NotBefore  int64             `json:"nbf"`
	IssuedAt   int64             `json:"iat"`
	JWTID      string            `json:"jti"`
	Access     []resourceActions `json:"access"`
}

// jwtHeader carries the signing certificate in x5c because distribution
// v3.1.2 finds the verification key there and checks it against
// rootcertbundle (token.VerifySigningKey).
type jwtHeader struct {
	Type      string   `json:"typ"`
	Algorithm string   `json:"alg"`
	X5C       []string `json:"x5c"`
}

// signer issues ES256 JWTs with a self-signed P-256 certificate that is
// both the x5c leaf and the only root in the registry's bundle.
type signer struct {
	key     *ecdsa.PrivateKey
	certDER []byte
}

func newSigner(commonName string) (*signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, fmt.Errorf("generate serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour), // tolerate clock skew between test processes
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("create signing certificate: %w", err)
	}
	return &signer{key: key, certDER: der}, nil
}

// certPEM is the content of the registry's rootcertbundle file.
func (s *signer) certPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.certDER})
}

// sign returns the compact serialization of claims (RFC 7515 section 7.1).
func (s *signer) sign(claims claimSet) (string, error) {
	header, err := json.Marshal(jwtHeader{
		Type:      "JWT",
		Algorithm: "ES256",
		// x5c is standard base64, not base64url (RFC 7515 section 4.1.6).
		X5C: []string{base64.StdEncoding.EncodeToString(s.certDER)},
	})
	if err != nil {
		return "", fmt.Errorf("marshal jwt header: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal jwt claims: %w", err)
	}
	enc := base64.RawURLEncoding
	input := enc.EncodeToString(header) + "." + enc.EncodeToString(payload)
	digest := sha256.Sum256([]byte(input))
	r, sig, err := ecdsa.Sign(rand.Reader, s.key, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign jwt: %w", err)
	}
	// JWS wants the fixed-size r||s form (RFC 7518 section 3.4), not ASN.1.
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	sig.FillBytes(raw[32:])
	return input + "." + enc.EncodeToString(raw), nil
}
