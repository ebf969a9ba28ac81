package oauthflow

// The one token-endpoint call of the proxy (the code exchange, the refresh grant and the
// machine grants of mint.go): the request as the provider's token request settings say
// (form or JSON body, client authentication explicit — client_secret_basic,
// client_secret_post, private_key_jwt (RFC 7523 section 2.2, assertion.go) or none —,
// token_params or refresh_params), and the response read by
// RFC 6749 section 5 or the provider's token_response_fields, with its metadata_fields.
// It is written here rather than with x/oauth2's Exchange because x/oauth2 can neither
// send a JSON body nor read tokens from another place of the response; it sends what
// x/oauth2 sends for the default settings (RFC 6749 section 2.3.1 Basic encoding,
// Accept: application/json).
//
// Metadata and tokens are taken only from the response of the token endpoint itself, read
// over the outbound client (TLS in production, no redirects) from the endpoint whose
// origin the call was checked against; no ID-token claim is read (an ID token's signature
// is not verified here).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/vault"
)

// maxTokenBody caps what is read of a token response.
const maxTokenBody = 1 << 20

// maxMetadataValue caps one metadata value.
const maxMetadataValue = 2048

// ErrMalformedTokenResponse: a 2xx token response without a usable access token, or with a
// metadata field outside its declared origins. The text never carries the body.
var ErrMalformedTokenResponse = errors.New("oauthflow: malformed token response")

// tokenCall posts params (plus extra, the provider's token_params or refresh_params) to
// endpoint as client and reads the response.
func tokenCall(ctx context.Context, hc *http.Client, p Provider, client ClientCredentials, endpoint string,
	params map[string]string, extra map[string]string, now time.Time) (Token, error) {
	auth, err := p.authenticate(client, endpoint, now) // client_auth.go
	if err != nil {
		return Token{}, err
	}
	hc, err = tokenHTTPClient(hc, p, client, now) // tls_client_auth: hc presenting the client's certificate
	if err != nil {
		return Token{}, err
	}
	body := make(map[string]string, len(params)+len(extra)+len(auth.fields))
	for k, v := range extra {
		body[k] = v
	}
	for k, v := range params {
		body[k] = v
	}
	for k, v := range auth.fields {
		body[k] = v
	}
	var (
		payload []byte
		ctype   string
	)
	if p.TokenRequestFormat == FormatJSON {
		payload, _ = json.Marshal(body)
		ctype = "application/json"
	} else {
		form := url.Values{}
		for k, v := range body {
			form.Set(k, v)
		}
		payload, ctype = []byte(form.Encode()), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(payload))
	if err != nil {
		return Token{}, fmt.Errorf("%w: %q: token endpoint URL", ErrInvalidProvider, p.Name)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("Accept", "application/json")
	if auth.basic {
		req.SetBasicAuth(auth.basicAuth())
	}
	res, err := hc.Do(req)
	if err != nil {
		return Token{}, providerFailure("token", err)
	}
	defer res.Body.Close()
	raw, rerr := outbound.ReadLimited(res.Body, maxTokenBody)
	if res.StatusCode < 200 || res.StatusCode > 299 {
		pe := &ProviderError{Op: "token", Code: ProviderErrorCode, Status: res.StatusCode, NoCode: true,
			RetryAfter: res.Header.Get("Retry-After")}
		if rerr == nil {
			if code := errorField(parseTokenBody(res.Header.Get("Content-Type"), raw)); code != "" {
				pe.Code, pe.NoCode = ErrorCode(code), false
			}
		}
		return Token{}, pe
	}
	if rerr != nil {
		return Token{}, providerFailure("token", rerr)
	}
	doc := parseTokenBody(res.Header.Get("Content-Type"), raw)
	if doc == nil {
		return Token{}, fmt.Errorf("oauthflow: token request failed: %w", &opaqueError{err: ErrMalformedTokenResponse})
	}
	tok, err := p.readToken(doc, now)
	if err != nil {
		if code := errorField(doc); code != "" { // Slack: 200 {"ok":false,"error":"invalid_code"}
			return Token{}, &ProviderError{Op: "token", Code: ErrorCode(code), Status: res.StatusCode}
		}
		return Token{}, fmt.Errorf("oauthflow: token request failed: %w", &opaqueError{err: err})
	}
	return tok, nil
}

// parseTokenBody reads a token response: a JSON object, or a form-encoded body (older
// GitHub-style servers). nil when it is neither.
func parseTokenBody(contentType string, raw []byte) map[string]any {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" || mt == "text/plain" {
		if vals, err := url.ParseQuery(string(raw)); err == nil && len(vals) > 0 {
			out := make(map[string]any, len(vals))
			for k := range vals {
				out[k] = vals.Get(k)
			}
			return out
		}
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&doc) != nil {
		return nil
	}
	return doc
}

func errorField(doc map[string]any) string {
	s, _ := doc["error"].(string)
	return s
}

// lookup returns the value at a dot-separated path of doc.
func lookup(doc map[string]any, path string) (any, bool) {
	var cur any = doc
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// field is the response value of a standard field, where token_response_fields puts it.
func (p Provider) field(doc map[string]any, name string) (any, bool) {
	if path, ok := p.TokenResponseFields[name]; ok {
		return lookup(doc, path)
	}
	v, ok := doc[name]
	return v, ok && v != nil
}

// readToken maps a token response document to a Token.
func (p Provider) readToken(doc map[string]any, now time.Time) (Token, error) {
	access, _ := p.field(doc, "access_token")
	at, ok := access.(string)
	if !ok || at == "" {
		return Token{}, fmt.Errorf("%w: no access token", ErrMalformedTokenResponse)
	}
	out := Token{AccessToken: vault.NewSecret(at), TokenType: "Bearer", doc: doc}
	if v, ok := p.field(doc, "refresh_token"); ok {
		if rt, _ := v.(string); rt != "" {
			out.RefreshToken = vault.NewSecret(rt)
		}
	}
	if v, ok := p.field(doc, "token_type"); ok {
		if tt, _ := v.(string); tt != "" {
			out.TokenType = tt
		}
	}
	if strings.EqualFold(out.TokenType, "bearer") {
		out.TokenType = "Bearer"
	}
	var expiresIn int64
	if v, ok := p.field(doc, "expires_in"); ok {
		expiresIn = seconds(v)
	}
	switch {
	case expiresIn > 0:
		t := now.Add(time.Duration(expiresIn) * time.Second).UTC()
		out.ExpiresAt = &t
	case p.AssumedExpiresIn > 0:
		t := now.Add(time.Duration(p.AssumedExpiresIn) * time.Second).UTC()
		out.ExpiresAt = &t
	}
	for _, f := range refreshExpiryFields { // the refresh token's own lifetime, when sent
		if v, ok := p.field(doc, f); ok {
			if secs, ok := positiveSeconds(v); ok {
				t := now.Add(time.Duration(secs) * time.Second).UTC()
				out.RefreshExpiresAt = &t
				break
			}
		}
	}
	if v, ok := p.field(doc, "scope"); ok {
		switch s := v.(type) {
		case string:
			out.Scopes = strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
		case []any:
			for _, e := range s {
				if str, ok := e.(string); ok && str != "" {
					out.Scopes = append(out.Scopes, str)
				}
			}
		}
		if len(out.Scopes) == 0 {
			out.Scopes = nil
		}
	}
	md, err := p.readMetadata(doc)
	if err != nil {
		out.AccessToken.Wipe()
		out.RefreshToken.Wipe()
		return Token{}, err
	}
	out.Metadata = md
	return out, nil
}

// seconds reads expires_in: a JSON number or a numeric string (some providers quote it);
// at most ten years.
func seconds(v any) int64 {
	var s string
	switch x := v.(type) {
	case json.Number:
		s = x.String()
	case string:
		s = x
	default:
		return 0
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n <= 0 || n > 10*365*24*3600 {
		return 0
	}
	return int64(n)
}

// readMetadata keeps the provider's metadata_fields of a token response: strings, numbers
// and booleans, as strings of at most 2 KiB. A URL-valued field must be an absolute https
// URL (no userinfo, fragment) whose origin fits one of its declared origins, else the
// whole response is refused. nil when there is none.
func (p Provider) readMetadata(doc map[string]any) (map[string]string, error) {
	var out map[string]string
	for _, m := range p.MetadataFields {
		v, ok := lookup(doc, m.ResponsePath())
		if !ok {
			continue
		}
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case json.Number:
			s = x.String()
		case bool:
			s = strconv.FormatBool(x)
		default:
			continue
		}
		if s == "" || len(s) > maxMetadataValue || strings.ContainsFunc(s, isControl) {
			continue
		}
		if err := p.CheckMetadataValue(m.Name, s); err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[m.Name] = s
	}
	return out, nil
}

// CheckMetadataValue checks value of metadata field name: a field with origins must be
// an absolute https URL (canonical, no userinfo, query or fragment) whose origin fits one
// of them. A field the provider does not declare, or one without origins, passes.
func (p Provider) CheckMetadataValue(name, value string) error {
	for _, m := range p.MetadataFields {
		if m.Name != name || len(m.Origins) == 0 {
			continue
		}
		if reason := checkTemplateURL(value, true); reason != "" || !strings.HasPrefix(value, "https://") ||
			strings.Contains(value, "?") {
			return fmt.Errorf("%w: %s is not a plain https URL", ErrMalformedTokenResponse, name)
		}
		origin := vault.OriginOf(value)
		for _, o := range m.Origins {
			if vault.MatchOrigin(vault.OriginPatternOf(o), origin) {
				return nil
			}
		}
		return fmt.Errorf("%w: %s is not within its declared origins", ErrMalformedTokenResponse, name)
	}
	return nil
}
