package oauthflow

import (
	"errors"
	"fmt"
	"net/url"
)

// The authorization response (RFC 6749 section 4.1.2) as it arrives on the callback, and
// the checks made on it before anything is looked up or exchanged.

// Errors of the callback checks. They never carry a parameter's value.
var (
	// ErrMalformedCallback: a parameter is repeated, or neither code nor error is given.
	ErrMalformedCallback = errors.New("oauthflow: malformed authorization response")
	// ErrIssuerMismatch: iss differs from the provider's issuer (RFC 9207 section 2.4).
	ErrIssuerMismatch = errors.New("oauthflow: issuer mismatch")
	// ErrIssuerMissing: the provider requires iss and the response has none.
	ErrIssuerMissing = errors.New("oauthflow: issuer missing")
)

// Callback is a parsed authorization response. It holds the code and the state: String
// redacts them.
type Callback struct {
	State  string
	Code   string
	Iss    string
	HasIss bool
	// Error is the provider's error parameter, raw. Never show it: use ErrorCode.
	Error string
}

// String never shows the code or the state.
func (c Callback) String() string {
	errCode := ""
	if c.Error != "" {
		errCode = ErrorCode(c.Error)
	}
	return fmt.Sprintf("Callback{state:%t code:%t iss:%t error:%q}", c.State != "", c.Code != "", c.HasIss, errCode)
}

// ParseCallback reads the response parameters from the callback's query. A parameter that
// appears more than once is refused (two parsers could pick different ones). The state is
// returned even when the response is an error, so that the session can be found.
func ParseCallback(q url.Values) (Callback, error) {
	for _, k := range []string{"state", "code", "iss", "error"} {
		if len(q[k]) > 1 {
			return Callback{}, fmt.Errorf("%w: %s repeated", ErrMalformedCallback, k)
		}
	}
	c := Callback{State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error")}
	if v, ok := q["iss"]; ok {
		c.Iss, c.HasIss = v[0], true
	}
	if c.Code == "" && c.Error == "" {
		return c, fmt.Errorf("%w: neither code nor error", ErrMalformedCallback)
	}
	return c, nil
}

// CheckIssuer applies RFC 9207 section 2.4: when the response carries iss, it must equal
// the provider's issuer byte for byte (no normalisation, no trailing-slash leniency);
// when it carries none, it is refused only if the provider is marked require_iss. A
// provider without a configured issuer has nothing to compare with and passes. Call it
// before the code is used.
func CheckIssuer(p Provider, c Callback) error {
	if !c.HasIss {
		if p.RequireIss {
			return ErrIssuerMissing
		}
		return nil
	}
	if p.Issuer == "" {
		return nil
	}
	if c.Iss != p.Issuer {
		return ErrIssuerMismatch
	}
	return nil
}

// ProviderErrorCode is the code the flow reports for a provider failure it cannot name
// with one of the RFC 6749 codes.
const ProviderErrorCode = "provider_error"

// rfc6749Codes are the error codes of the authorization response (RFC 6749 section
// 4.1.2.1) and the token response (section 5.2), plus invalid_token (RFC 6750) and
// unsupported_token_type (RFC 7009): the only provider error texts the proxy repeats.
var rfc6749Codes = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true,
	"unsupported_response_type": true, "invalid_scope": true, "server_error": true,
	"temporarily_unavailable": true, "invalid_client": true, "invalid_grant": true,
	"unsupported_grant_type": true, "invalid_token": true, "unsupported_token_type": true,
}

// ErrorCode returns code when it is one of the fixed RFC 6749 error codes, else
// ProviderErrorCode: a provider's free text is never echoed to a browser, a log or an API
// response.
func ErrorCode(code string) string {
	if rfc6749Codes[code] {
		return code
	}
	return ProviderErrorCode
}
