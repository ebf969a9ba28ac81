package vaulttransit

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/authpipe/authpipe-proxy/kms"
)

// opError carries a kms sentinel and the underlying cause (often an *api.ResponseError)
// with a one-line message: the API client's own Error() spans several lines.
type opError struct {
	kind  error
	msg   string
	cause error
}

func (e *opError) Error() string   { return e.msg }
func (e *opError) Unwrap() []error { return []error{e.kind, e.cause} }

// classify maps a failed Vault call to a kms sentinel. This is the only place that does.
// Vault's error strings for Transit name the problem, never the plaintext or the token.
func (b *Backend) classify(op string, err error) error {
	wrap := func(kind error, format string, args ...any) error {
		return &opError{kind: kind, cause: err,
			msg: fmt.Sprintf("%v: vault-transit %s %s: ", kind, op, b.id) + fmt.Sprintf(format, args...)}
	}
	var re *api.ResponseError
	if !errors.As(err, &re) {
		if errors.Is(err, errNoSecret) {
			return wrap(kms.ErrUnavailable, "Vault returned an empty response")
		}
		// Connection refused, DNS, TLS verification, timeouts, cancellation: the KMS is not
		// usable right now. Fail closed.
		return wrap(kms.ErrUnavailable, "%v", err)
	}
	msg := vaultErrors(re)
	if strings.HasPrefix(op, "login") {
		// Refused credentials (an expired secret_id, a rotated service account) stop every
		// call just as an outage does, and callers must fail closed the same way.
		return wrap(kms.ErrUnavailable, "Vault refused the login (HTTP %d): %s", re.StatusCode, msg)
	}
	switch code := re.StatusCode; {
	case code == http.StatusTooManyRequests || code >= 500:
		return wrap(kms.ErrUnavailable, "HTTP %d after retries: %s", code, msg)
	case code == http.StatusForbidden:
		return wrap(kms.ErrUnavailable, "permission denied (HTTP 403): the %s token lacks \"update\" on %s/%s/%s, "+
			"or has expired; failing closed: %s", b.auth.name(), b.target.Mount, op, b.target.Key, msg)
	case code == http.StatusBadRequest && op == "decrypt":
		switch {
		case strings.Contains(msg, "encryption key not found"):
			return wrap(kms.ErrConfig, "transit key %q does not exist on mount %q: %s", b.target.Key, b.target.Mount, msg)
		case strings.Contains(msg, "too old"):
			return wrap(kms.ErrDecrypt, "the ciphertext's key version is below the key's min_decryption_version: %s", msg)
		default:
			return wrap(kms.ErrDecrypt, "%s", msg)
		}
	case code == http.StatusNotFound:
		return wrap(kms.ErrConfig, "not found (HTTP 404): is %q a transit mount? %s", b.target.Mount, msg)
	case code == http.StatusBadRequest:
		return wrap(kms.ErrConfig, "Vault refused the request (HTTP 400): %s", msg)
	default:
		return wrap(kms.ErrUnavailable, "HTTP %d: %s", code, msg)
	}
}

// vaultErrors is Vault's {"errors":[...]} on one line, capped.
func vaultErrors(re *api.ResponseError) string {
	msg := strings.Join(re.Errors, "; ")
	if re.RawError {
		msg = "unparseable error body"
	}
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	if msg == "" {
		msg = "no error message"
	}
	return msg
}

func isStatus(err error, code int) bool {
	var re *api.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}
