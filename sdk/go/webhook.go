package authpipe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries the proxy's webhook signature:
// t=<unix seconds>,v1=<kid>:<hex HMAC-SHA256(secret, t + "." + body)>[,v1=...]. During a
// rotation of the signing secret a delivery carries one v1 per secret.
const SignatureHeader = "Authpipe-Signature"

// ErrInvalidSignature: a webhook delivery whose signature does not verify (wrong secret,
// tampered body, stale or future timestamp, malformed header).
var ErrInvalidSignature = errors.New("authpipe: invalid webhook signature")

// WebhookVerifier checks the proxy's webhook deliveries. Secrets are the signing secrets
// the proxy answered (whsec_...): during a rotation list the old and the new one.
type WebhookVerifier struct {
	Secrets []string
	// Tolerance is how far the delivery's timestamp may be from now (default 5 minutes).
	Tolerance time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// KeyID is the key id the proxy names a signing secret by in v1=<kid>:... .
func KeyID(secret string) string {
	h := sha256.New()
	h.Write([]byte("authpipe-proxy webhook kid v1\x00"))
	h.Write([]byte(secret))
	return "whk_" + hex.EncodeToString(h.Sum(nil)[:6])
}

// Verify checks header (the SignatureHeader value) against the raw body, byte for byte as
// received: never a re-serialized one.
func (v WebhookVerifier) Verify(header string, body []byte) error {
	tol := v.Tolerance
	if tol <= 0 {
		tol = 5 * time.Minute
	}
	now := time.Now
	if v.Now != nil {
		now = v.Now
	}
	var ts string
	type sig struct {
		kid string
		mac []byte
	}
	var sigs []sig
	for _, part := range strings.Split(header, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = val
		case "v1":
			kid, hexMAC, ok := strings.Cut(val, ":")
			if !ok {
				continue
			}
			if m, err := hex.DecodeString(hexMAC); err == nil {
				sigs = append(sigs, sig{kid, m})
			}
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrInvalidSignature
	}
	if d := now().Sub(time.Unix(n, 0)); d > tol || d < -tol {
		return ErrInvalidSignature
	}
	for _, secret := range v.Secrets {
		kid := KeyID(secret)
		m := hmac.New(sha256.New, []byte(secret))
		m.Write([]byte(ts))
		m.Write([]byte("."))
		m.Write(body)
		want := m.Sum(nil)
		for _, s := range sigs {
			if s.kid == kid && hmac.Equal(s.mac, want) {
				return nil
			}
		}
	}
	return ErrInvalidSignature
}

// Handler wraps next so that it only sees verified deliveries: the body is read (up to
// 1 MiB), verified and handed on; anything else is answered 401 (413 when too large).
func (v WebhookVerifier) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20+1))
		if err != nil {
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		if len(body) > 1<<20 {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		if v.Verify(r.Header.Get(SignatureHeader), body) != nil {
			http.Error(w, "invalid signature", http.StatusUnauthorized)
			return
		}
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		next.ServeHTTP(w, r)
	})
}
