package oauthflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"unicode"
	"unicode/utf8"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
)

// HTTP Basic credentials (RFC 7617) of basic connections. The username and the password
// are sealed together, as the JSON object {"username":..,"password":..}, in the
// credential's api_key field, bound to the API-key origins like an API key: one envelope,
// one binding, opened by the same code (refresher.openCredential) as an API key.

// MaxBasicUsernameLen and MaxBasicPasswordLen bound a basic credential (bytes).
const (
	MaxBasicUsernameLen = 256
	MaxBasicPasswordLen = 8192
)

// BasicCredential is a basic connection's username and password. Both are vault.Secrets:
// the password is a secret, and the username (often an e-mail address) is personal data
// that is never logged either; a connection's view shows at most its masked prefix
// (credential_prefix, BasicCredential.Prefix).
type BasicCredential struct {
	Username vault.Secret `json:"username"`
	Password vault.Secret `json:"password"`
}

// IsZero reports whether neither field is set.
func (b BasicCredential) IsZero() bool { return b.Username.IsZero() && b.Password.IsZero() }

// Check validates b as RFC 7617 allows it and this proxy stores it: a username of 1–256
// bytes and a password of 1–8192 bytes, both valid UTF-8 (the charset the credential is
// encoded in) without control characters (§2: "MUST NOT contain any control
// characters"), and no colon in the username (§2: the user-id ends at the first colon).
// The refusal is 400 invalid_request with one field error per bad field, named under
// prefix (e.g. "basic.username").
func (b BasicCredential) Check(prefix string) error {
	var p *problem.Problem
	if u := b.Username.Bytes(); len(u) == 0 || len(u) > MaxBasicUsernameLen || !basicText(u) || bytes.IndexByte(u, ':') >= 0 {
		p = problem.ErrInvalidRequest.WithField(prefix+"username", "required, 1–256 printable characters without ':'")
	}
	if pw := b.Password.Bytes(); len(pw) == 0 || len(pw) > MaxBasicPasswordLen || !basicText(pw) {
		if p == nil {
			p = problem.ErrInvalidRequest
		}
		p = p.WithField(prefix+"password", "required, 1 byte to 8 KiB of printable characters")
	}
	if p != nil {
		return p
	}
	return nil
}

// basicText: valid UTF-8 without control characters (C0, DEL, C1).
func basicText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if unicode.IsControl(r) {
			return false
		}
		b = b[n:]
	}
	return true
}

// Prefix is the masked username a connection's view shows as credential_prefix: its
// first 8 bytes (cut back to a whole character) when it has at least 16, else nothing,
// as an API key's prefix. Never anything of the password.
func (b BasicCredential) Prefix() string {
	p := b.Username.Prefix(8)
	for p != "" && !utf8.ValidString(p) {
		p = p[:len(p)-1]
	}
	return p
}

// encode writes b (which Check accepted) as the sealed plaintext {"username":..,"password":..}.
// Valid UTF-8 without control characters needs only '"' and '\' escaped, so the JSON is
// written straight into the one buffer the Secret takes over: no string copy of the password.
func (b BasicCredential) encode() vault.Secret {
	u, pw := b.Username.Bytes(), b.Password.Bytes()
	out := make([]byte, 0, len(`{"username":"","password":""}`)+2*(len(u)+len(pw)))
	out = append(out, `{"username":"`...)
	out = appendEscaped(out, u)
	out = append(out, `","password":"`...)
	out = appendEscaped(out, pw)
	out = append(out, `"}`...)
	return vault.SecretFromBytes(out)
}

func appendEscaped(out, s []byte) []byte {
	for _, c := range s {
		if c == '"' || c == '\\' {
			out = append(out, '\\')
		}
		out = append(out, c)
	}
	return out
}

// errBasicSealed is the refusal of a sealed basic credential that does not decode: the
// plaintext is never quoted.
var errBasicSealed = errors.New("oauthflow: a sealed basic credential is not {\"username\",\"password\"}")

// OpenBasic decodes a basic connection's opened credential (the plaintext of its api_key
// field). The token endpoint returns its fields; Authorize sends them as HTTP Basic.
func OpenBasic(sec vault.Secret) (BasicCredential, error) {
	var b BasicCredential
	dec := json.NewDecoder(bytes.NewReader(sec.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || dec.More() || b.Username.IsZero() || b.Password.IsZero() {
		return BasicCredential{}, errBasicSealed
	}
	return b, nil
}
