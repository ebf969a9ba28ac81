package proxy

import (
	"time"
	"unicode/utf8"
)

// jsonContentType is the token response's Content-Type header value. It is shared by every
// response (as gin shares its own): a header value slice is replaced or appended to, never
// written in place, and its capacity of 1 makes an append copy it.
var jsonContentType = []string{"application/json; charset=utf-8"}[:1:1]

// appendJSON renders the token response without reflection (the hot path). The output is
// byte for byte what encoding/json produces for the struct (TestTokenResponseJSON).
func (r *tokenResponse) appendJSON(b []byte) []byte {
	b = append(b, `{"connection_id":`...)
	b = appendJSONString(b, r.ConnectionID)
	b = append(b, `,"credential_type":`...)
	b = appendJSONString(b, r.CredentialType)
	if r.AccessToken != "" {
		b = append(b, `,"access_token":`...)
		b = appendJSONString(b, r.AccessToken)
	}
	if r.APIKey != "" {
		b = append(b, `,"api_key":`...)
		b = appendJSONString(b, r.APIKey)
	}
	if r.Username != "" {
		b = append(b, `,"username":`...)
		b = appendJSONString(b, r.Username)
	}
	if r.Password != "" {
		b = append(b, `,"password":`...)
		b = appendJSONString(b, r.Password)
	}
	if r.TokenType != "" {
		b = append(b, `,"token_type":`...)
		b = appendJSONString(b, r.TokenType)
	}
	if r.ExpiresAt != nil {
		b = append(b, `,"expires_at":"`...)
		b = r.ExpiresAt.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	b = append(b, `,"scopes":`...)
	if r.Scopes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, s := range r.Scopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	if r.Metadata != "" {
		b = append(b, `,"metadata":`...)
		b = append(b, r.Metadata...)
	}
	return append(b, '}')
}

// rawJSON is a JSON object text kept as a string (a connection's stored metadata, which
// store.JSONObject wrote with encoding/json): copied into the response as it is.
type rawJSON string

// MarshalJSON implements json.Marshaler (the reflection path, for the tests).
func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

// appendJSONString quotes s as encoding/json does (HTML-safe escaping, invalid UTF-8 as
// U+FFFD, U+2028 and U+2029 escaped).
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
