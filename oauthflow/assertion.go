package oauthflow

// JWTs the proxy signs for machine grants (RFC 7523): the client assertion of
// private_key_jwt client authentication (section 2.2, OpenID Connect Core section 9) and
// the authorization grant assertion of jwt_bearer (section 2.1, e.g. a Google service
// account), with github.com/go-jose/go-jose/v4: RS256 for RSA keys (2048 bits or more),
// ES256 for P-256 keys, nothing else. Every assertion has a fresh 128-bit jti from
// crypto/rand, iat now and a short exp; its aud is the provider's assertion_audience or
// the token endpoint URL the request goes to (the connection's filled one, the binding's
// destination), never a URL taken from a key file.
//
// The keys are parsed here too: PEM private keys (PKCS#1, PKCS#8, SEC 1 EC) and the
// Google-style service-account JSON key. Parsers of untrusted input: FuzzParsePrivateKey,
// FuzzParseServiceAccountKey. No error names the key or quotes the input.

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Assertion lifetimes: a client assertion is used once, at once (5 minutes, as OpenID
// Connect and most servers allow); a jwt_bearer assertion at most 1 hour (Google's limit,
// RFC 7523 section 3 leaves it to the server).
const (
	ClientAssertionLifetime = 5 * time.Minute
	GrantAssertionLifetime  = time.Hour
)

// MaxKeyLen caps a private key or service-account key the proxy accepts (16 KiB).
const MaxKeyLen = 16 << 10

// ClientAssertionType is the client_assertion_type of private_key_jwt (RFC 7523 section 2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// GrantTypeJWTBearer is the grant_type of jwt_bearer (RFC 7523 section 2.1).
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// ErrInvalidKey: a private key or service-account key that cannot be used (malformed, an
// unsupported type or size). The text never carries the key.
var ErrInvalidKey = errors.New("oauthflow: invalid signing key")

// SigningKey is a parsed private key with the JWS algorithm it signs with and its key id
// (a service-account key's private_key_id; "" when unknown). It never prints the key.
type SigningKey struct {
	key crypto.Signer
	alg jose.SignatureAlgorithm
	kid string
}

// String never shows the key.
func (k SigningKey) String() string { return fmt.Sprintf("SigningKey{alg:%s kid:%q}", k.alg, k.kid) }

// Algorithm is the JWS algorithm the key signs with (RS256 or ES256).
func (k SigningKey) Algorithm() string { return string(k.alg) }

// KeyID is the key's id ("" when unknown).
func (k SigningKey) KeyID() string { return k.kid }

// Public is the key's public half.
func (k SigningKey) Public() crypto.PublicKey { return k.key.Public() }

// ParsePrivateKey parses one PEM private key: "RSA PRIVATE KEY" (PKCS#1), "PRIVATE KEY"
// (PKCS#8, RSA or EC) or "EC PRIVATE KEY" (SEC 1). Only RSA of 2048 bits or more and ECDSA
// P-256 are accepted. Anything after the first PEM block is ignored.
func ParsePrivateKey(raw []byte) (SigningKey, error) {
	if len(raw) == 0 || len(raw) > MaxKeyLen {
		return SigningKey{}, fmt.Errorf("%w: empty or over 16 KiB", ErrInvalidKey)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return SigningKey{}, fmt.Errorf("%w: not a PEM private key", ErrInvalidKey)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return SigningKey{}, fmt.Errorf("%w: PEM block is not a private key", ErrInvalidKey)
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("%w: malformed private key", ErrInvalidKey) // x509's text may quote the input
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return SigningKey{}, fmt.Errorf("%w: RSA keys must have at least 2048 bits", ErrInvalidKey)
		}
		return SigningKey{key: k, alg: jose.RS256}, nil
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return SigningKey{}, fmt.Errorf("%w: EC keys must be P-256", ErrInvalidKey)
		}
		return SigningKey{key: k, alg: jose.ES256}, nil
	default:
		return SigningKey{}, fmt.Errorf("%w: only RSA and EC P-256 keys are supported", ErrInvalidKey)
	}
}

// ServiceAccountKey is a parsed service-account key (Google's JSON key file and the same
// shape from other providers): who signs (Issuer: client_email, else client_id) and the
// key. The file's token_uri and auth URIs are ignored: the provider's token_url is the
// one destination the key is bound to.
type ServiceAccountKey struct {
	Issuer string
	Key    SigningKey
}

// String never shows the key.
func (k ServiceAccountKey) String() string {
	return fmt.Sprintf("ServiceAccountKey{iss:%q %s}", k.Issuer, k.Key)
}

// serviceAccountFile is the JSON key file's fields the proxy reads.
type serviceAccountFile struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	ClientID     string `json:"client_id"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
}

// ParseServiceAccountKey parses a service-account JSON key: an object with private_key
// (PEM, ParsePrivateKey), client_email or client_id (the assertion's issuer), optional
// private_key_id (the JWS kid) and optional type, which must then be "service_account".
// Other fields (project_id, token_uri, ...) are ignored.
func ParseServiceAccountKey(raw []byte) (ServiceAccountKey, error) {
	if len(raw) == 0 || len(raw) > MaxKeyLen {
		return ServiceAccountKey{}, fmt.Errorf("%w: service-account key empty or over 16 KiB", ErrInvalidKey)
	}
	var f serviceAccountFile
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&f); err != nil || dec.More() {
		return ServiceAccountKey{}, fmt.Errorf("%w: a service-account key must be one JSON object", ErrInvalidKey)
	}
	if f.Type != "" && f.Type != "service_account" {
		return ServiceAccountKey{}, fmt.Errorf("%w: service-account key type must be service_account", ErrInvalidKey)
	}
	iss := f.ClientEmail
	if iss == "" {
		iss = f.ClientID
	}
	if iss == "" || len(iss) > 512 || strings.ContainsFunc(iss, isControl) {
		return ServiceAccountKey{}, fmt.Errorf("%w: service-account key needs client_email (or client_id)", ErrInvalidKey)
	}
	if len(f.PrivateKeyID) > 256 || strings.ContainsFunc(f.PrivateKeyID, isControl) {
		return ServiceAccountKey{}, fmt.Errorf("%w: private_key_id too long or not printable", ErrInvalidKey)
	}
	key, err := ParsePrivateKey([]byte(f.PrivateKey))
	if err != nil {
		return ServiceAccountKey{}, err
	}
	key.kid = f.PrivateKeyID
	return ServiceAccountKey{Issuer: iss, Key: key}, nil
}

// parseClientKey parses a private_key_jwt client's key: a PEM private key, or a JSON key
// ({"private_key","private_key_id"}, as ParseServiceAccountKey but the issuer is the
// client id) whose private_key_id becomes the kid; at most MaxKeyLen bytes either way.
func parseClientKey(raw []byte) (SigningKey, error) {
	if len(raw) == 0 || len(raw) > MaxKeyLen {
		return SigningKey{}, fmt.Errorf("%w: a client key must be 1 byte to %d KiB", ErrInvalidKey, MaxKeyLen>>10)
	}
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '{' {
		var f serviceAccountFile
		if json.Unmarshal(t, &f) != nil || len(f.PrivateKeyID) > 256 || strings.ContainsFunc(f.PrivateKeyID, isControl) {
			return SigningKey{}, fmt.Errorf("%w: a JSON client key needs private_key (and optional private_key_id)", ErrInvalidKey)
		}
		k, err := ParsePrivateKey([]byte(f.PrivateKey))
		k.kid = f.PrivateKeyID
		return k, err
	}
	return ParsePrivateKey(raw)
}

// newJTI is a fresh JWT ID: 128 bits from crypto/rand, hex.
func newJTI() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// assertionClaims are the claims of both assertions; Scope only in a jwt_bearer one.
type assertionClaims struct {
	jwt.Claims
	Scope string `json:"scope,omitempty"`
}

// sign signs claims with key (typ JWT, kid when known), a fresh jti, iat now and exp
// now + lifetime.
func sign(key SigningKey, c assertionClaims, now time.Time, lifetime time.Duration) (string, error) {
	if key.key == nil {
		return "", fmt.Errorf("%w: no key", ErrInvalidKey)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if key.kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), key.kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.alg, Key: key.key}, opts)
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrInvalidKey, key.alg)
	}
	jti, err := newJTI()
	if err != nil {
		return "", err
	}
	now = now.UTC()
	c.ID, c.IssuedAt, c.Expiry = jti, jwt.NewNumericDate(now), jwt.NewNumericDate(now.Add(lifetime))
	out, err := jwt.Signed(signer).Claims(c).Serialize()
	if err != nil {
		return "", fmt.Errorf("oauthflow: signing an assertion: %w", &opaqueError{err: err})
	}
	return out, nil
}

// assertionAudience is the aud of the provider's assertions: assertion_audience, else the
// token endpoint URL the request goes to.
func (p Provider) assertionAudience(endpoint string) string {
	if p.AssertionAudience != "" {
		return p.AssertionAudience
	}
	return endpoint
}

// ClientAssertion signs the private_key_jwt client assertion (RFC 7523 section 2.2) of
// client clientID with key for a request to endpoint: iss = sub = clientID, aud =
// assertion_audience or endpoint, a fresh jti, iat now, exp now + 5 minutes.
func (p Provider) ClientAssertion(key SigningKey, clientID, endpoint string, now time.Time) (string, error) {
	if clientID == "" {
		return "", fmt.Errorf("%w: %q: private_key_jwt needs a client_id", ErrInvalidProvider, p.Name)
	}
	return sign(key, assertionClaims{Claims: jwt.Claims{Issuer: clientID, Subject: clientID,
		Audience: jwt.Audience{p.assertionAudience(endpoint)}}}, now, ClientAssertionLifetime)
}

// GrantAssertion signs the jwt_bearer authorization grant (RFC 7523 section 2.1) of
// service account sa for a request to endpoint: iss = the account, sub = the connection's
// connection_config "subject" when the provider declares that parameter (the user the
// account acts for: domain-wide delegation, DocuSign, Salesforce), else the account itself
// (RFC 7523 section 3 requires a sub), aud =
// assertion_audience or endpoint, scope = the provider's default_scopes joined by its
// separator (omitted when none), a fresh jti, iat now, exp now + 1 hour.
func (p Provider) GrantAssertion(sa ServiceAccountKey, subject, endpoint string, now time.Time) (string, error) {
	if subject == "" {
		subject = sa.Issuer
	}
	c := assertionClaims{Claims: jwt.Claims{Issuer: sa.Issuer, Subject: subject,
		Audience: jwt.Audience{p.assertionAudience(endpoint)}}}
	if len(p.DefaultScopes) > 0 {
		c.Scope = p.JoinScopes(p.DefaultScopes)
	}
	return sign(sa.Key, c, now, GrantAssertionLifetime)
}
