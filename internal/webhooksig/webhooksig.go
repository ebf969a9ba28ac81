// Package webhooksig is the signature scheme of the webhooks the proxy sends to
// applications: "Authpipe-Signature: t=<unix>,v1=<kid>:<hex HMAC-SHA256(secret, t.body)>",
// one v1 per signing secret during a rotation. The refresher's dispatcher signs with it,
// admin rotates the secrets it names, and a receiver verifies with Verify.
package webhooksig

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/secret"
)

// SignatureHeader carries "t=<unix seconds>,v1=<kid>:<hex HMAC-SHA256(secret, t + "." + body)>",
// with one v1 per signing secret: two during a rotation window (the new secret's first).
// The kid is KID(secret), so a receiver picks the signature of the secret it holds.
// Verify also accepts a bare "v1=<hex>" without a kid. docs/webhooks.md.
const SignatureHeader = "Authpipe-Signature"

// RetryWindow bounds how long a delivery is retried with the default config (12
// attempts, backoff from 10 s doubling to a cap of 1 h, with jitter: about 3.5 h): a
// rotated secret keeps signing this long, so receivers have that window to roll.
const RetryWindow = 6 * time.Hour

// KID is the key id of a webhook secret: "whk_" and 12 hex digits of
// SHA-256(label ‖ secret). It identifies a secret without revealing anything usable about it.
func KID(secret []byte) string {
	h := sha256.New()
	h.Write([]byte("authpipe-proxy webhook kid v1\x00"))
	h.Write(secret)
	return "whk_" + hex.EncodeToString(h.Sum(nil)[:6])
}

// NewSecret returns "whsec_" and 32 random bytes, base64url.
func NewSecret() (secret.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return secret.Secret{}, err
	}
	return secret.New("whsec_" + base64.RawURLEncoding.EncodeToString(b[:])), nil
}

// Sign returns the signature header value of body sent at ts, signed with every secret
// given (the active one first; during a rotation window also the previous one).
func Sign(secret []byte, ts time.Time, body []byte, more ...[]byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + t)
	for _, sec := range append([][]byte{secret}, more...) {
		b.WriteString(",v1=" + KID(sec) + ":" + hex.EncodeToString(mac(sec, t, body)))
	}
	return b.String()
}

func mac(secret []byte, t string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t))
	mac.Write([]byte("."))
	mac.Write(body)
	return mac.Sum(nil)
}

// ErrBadSignature: a webhook's signature header is missing, malformed, stale or wrong.
var ErrBadSignature = errors.New("webhooksig: bad webhook signature")

// Verify checks a signature header as a receiver should: the timestamp within tolerance
// of now, and the signature whose kid is KID(secret) (signatures of other kids are
// not tried) equal, in constant time, to the MAC over the timestamp and the raw body. A
// signature without a kid is compared too.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	kid := KID(secret)
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if sk, sv, ok := strings.Cut(v, ":"); ok {
				if sk != kid {
					continue
				}
				v = sv
			}
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(n, 0)); d > tolerance || d < -tolerance {
		return ErrBadSignature
	}
	want := mac(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}
