package webhookverify

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // HMAC-SHA1 is what Twilio and Intercom sign with; HMAC does not rest on SHA-1's collision resistance
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Request is an incoming webhook as the verifier sees it: the raw body, exactly as
// received, and the URL the provider called (scheme, host, path and query as the
// provider knows them: the proxy's public URL, not the address it listens on).
type Request struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
}

// Result is a verified delivery.
type Result struct {
	// Digest is SHA-256 of the signed content: the same delivery replayed has the same
	// digest, whichever secret signed it. The caller records it for RememberFor.
	Digest [32]byte
	// EventID is the provider's event id ("" when the scheme or the delivery has none).
	EventID string
	// Signed is the signing time ("zero" when the scheme has no timestamp).
	Signed time.Time
}

// Refusal reasons (Reason): stable codes for audit events and metrics, never a value
// from the request.
const (
	ReasonMissing   = "missing_signature"
	ReasonMalformed = "malformed_signature"
	ReasonStale     = "stale_timestamp"
	ReasonMismatch  = "signature_mismatch"
	ReasonTooLarge  = "body_too_large"
)

// Error is a refused delivery; Reason is one of the Reason… constants.
type Error struct{ Reason string }

func (e *Error) Error() string { return "webhookverify: refused: " + e.Reason }

// ErrRefused is what every *Error is (errors.Is).
var ErrRefused = errors.New("webhookverify: refused")

// Is makes errors.Is(err, ErrRefused) hold for every *Error.
func (e *Error) Is(target error) bool { return target == ErrRefused }

// Reason is err's refusal reason, or "" when err is not a refusal.
func Reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func refuse(reason string) error { return &Error{Reason: reason} }

// Verify checks r against the scheme with each secret in turn (the current one, and the
// previous one during a rotation): the timestamp within the tolerance of now, then every
// signature the header carries against the MAC of the signed content, compared with
// hmac.Equal on the decoded bytes. The scheme must be valid (Validate).
func (s Scheme) Verify(secrets [][]byte, r Request, now time.Time) (Result, error) {
	if len(r.Body) > MaxBody {
		return Result{}, refuse(ReasonTooLarge)
	}
	values := r.Header.Values(s.SignatureHeader)
	if len(values) != 1 || values[0] == "" {
		if len(values) > 1 {
			return Result{}, refuse(ReasonMalformed) // two signature headers: which one did the provider send?
		}
		return Result{}, refuse(ReasonMissing)
	}
	sigs, pairs, err := s.ParseHeader(values[0])
	if err != nil {
		return Result{}, err
	}
	var res Result
	ts := ""
	if s.Timestamp != "" {
		raw, ok := s.locate(s.Timestamp, r, pairs)
		if !ok {
			return Result{}, refuse(ReasonMissing)
		}
		at, err := s.parseTime(raw)
		if err != nil {
			return Result{}, refuse(ReasonMalformed)
		}
		if d := now.Sub(at); d > s.tolerance() || d < -s.tolerance() {
			return Result{}, refuse(ReasonStale)
		}
		ts, res.Signed = raw, at
	}
	content, err := s.content(r, ts)
	if err != nil {
		return Result{}, err
	}
	matched := false
	for _, sec := range secrets {
		if len(sec) == 0 {
			continue
		}
		m, _ := s.newMAC()
		mac := hmac.New(m, sec)
		mac.Write(content)
		want := mac.Sum(nil)
		for _, got := range sigs {
			if hmac.Equal(got, want) {
				matched = true
			}
		}
	}
	if !matched {
		return Result{}, refuse(ReasonMismatch)
	}
	res.Digest = sha256.Sum256(content)
	if s.EventID != "" {
		if id, ok := s.locate(s.EventID, r, pairs); ok && len(id) <= 256 {
			res.EventID = id
		}
	}
	return res, nil
}

// Sign returns the header value the scheme's provider would send for r signed with
// secret at ts (tests, and the documentation's examples). A kv scheme gets
// "<timestamp key>=<ts>,<signature key>=<sig>"; a header timestamp is the caller's to set.
func (s Scheme) Sign(secret []byte, r Request, ts string) (string, error) {
	content, err := s.content(r, ts)
	if err != nil {
		return "", err
	}
	m, err := s.newMAC()
	if err != nil {
		return "", err
	}
	mac := hmac.New(m, secret)
	mac.Write(content)
	sig := s.Prefix + s.encode(mac.Sum(nil))
	if s.SignatureFormat == "kv" {
		_, tk, _ := strings.Cut(s.Timestamp, ":")
		return tk + "=" + ts + "," + s.SignatureKey + "=" + sig, nil
	}
	return sig, nil
}

func (s Scheme) newMAC() (func() hash.Hash, error) {
	switch s.Algorithm {
	case "hmac-sha256":
		return sha256.New, nil
	case "hmac-sha1":
		return sha1.New, nil
	}
	return nil, fmt.Errorf("%w: algorithm %q (hmac-sha256 or hmac-sha1)", ErrInvalidScheme, s.Algorithm)
}

func (s Scheme) encode(b []byte) string {
	if s.Encoding == "base64" {
		return base64.StdEncoding.EncodeToString(b)
	}
	return hex.EncodeToString(b)
}

func (s Scheme) decode(v string) ([]byte, error) {
	if s.Encoding == "base64" {
		return base64.StdEncoding.DecodeString(v)
	}
	return hex.DecodeString(v)
}

// maxSignatures bounds the signatures one header may carry (a rotation sends two).
const maxSignatures = 8

// ParseHeader parses a signature header value: the decoded signatures it carries and,
// for a kv scheme, its pairs. A value that does not parse, or carries no signature of
// the scheme's length, is a malformed_signature refusal.
func (s Scheme) ParseHeader(v string) (sigs [][]byte, pairs map[string]string, err error) {
	if len(v) > 4096 {
		return nil, nil, refuse(ReasonMalformed)
	}
	m, _ := s.newMAC()
	size := 32
	if m != nil {
		size = m().Size()
	}
	add := func(enc string) bool {
		enc, ok := strings.CutPrefix(strings.TrimSpace(enc), s.Prefix)
		if !ok {
			return false
		}
		b, err := s.decode(enc)
		if err != nil || len(b) != size {
			return false
		}
		sigs = append(sigs, b)
		return true
	}
	if s.SignatureFormat != "kv" {
		if !add(v) {
			return nil, nil, refuse(ReasonMalformed)
		}
		return sigs, nil, nil
	}
	pairs = map[string]string{}
	for _, part := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return nil, nil, refuse(ReasonMalformed)
		}
		if k == s.SignatureKey {
			if len(sigs) == maxSignatures {
				return nil, nil, refuse(ReasonMalformed)
			}
			add(val) // a signature of another length or alphabet is not one of ours: skipped
			continue
		}
		if _, dup := pairs[k]; dup {
			return nil, nil, refuse(ReasonMalformed) // "t=1,t=2": which one was signed?
		}
		pairs[k] = val
	}
	if len(sigs) == 0 {
		return nil, nil, refuse(ReasonMalformed)
	}
	return sigs, pairs, nil
}

func (s Scheme) locate(loc string, r Request, pairs map[string]string) (string, bool) {
	kind, name, _ := strings.Cut(loc, ":")
	switch kind {
	case "header":
		vs := r.Header.Values(name)
		if len(vs) != 1 || vs[0] == "" {
			return "", false
		}
		return vs[0], true
	case "kv":
		v, ok := pairs[name]
		return v, ok && v != ""
	case "json":
		var top map[string]json.RawMessage
		if json.Unmarshal(r.Body, &top) != nil {
			return "", false
		}
		raw, ok := top[name]
		if !ok {
			return "", false
		}
		var str string
		if json.Unmarshal(raw, &str) == nil {
			return str, str != ""
		}
		var n json.Number
		if json.Unmarshal(raw, &n) == nil {
			return n.String(), true
		}
	}
	return "", false
}

func (s Scheme) parseTime(raw string) (time.Time, error) {
	switch s.TimestampFormat {
	case "rfc3339":
		return time.Parse(time.RFC3339, raw)
	case "unix_ms":
		n, err := strconv.ParseInt(raw, 10, 64)
		return time.UnixMilli(n), err
	default:
		n, err := strconv.ParseInt(raw, 10, 64)
		return time.Unix(n, 0), err
	}
}

// content is the signed content: the template with its placeholders filled.
func (s Scheme) content(r Request, ts string) ([]byte, error) {
	out := make([]byte, 0, len(r.Body)+len(r.URL)+64)
	t := s.Signed
	for t != "" {
		i := strings.IndexByte(t, '{')
		if i < 0 {
			out = append(out, t...)
			break
		}
		out = append(out, t[:i]...)
		j := strings.IndexByte(t[i:], '}')
		if j < 0 {
			return nil, fmt.Errorf("%w: signed %q", ErrInvalidScheme, s.Signed)
		}
		switch t[i : i+j+1] {
		case "{body}":
			out = append(out, r.Body...)
		case "{timestamp}":
			out = append(out, ts...)
		case "{url}":
			out = append(out, r.URL...)
		case "{method}":
			out = append(out, r.Method...)
		case "{params}":
			p, err := sortedParams(r.Body)
			if err != nil {
				return nil, refuse(ReasonMalformed)
			}
			out = append(out, p...)
		default:
			return nil, fmt.Errorf("%w: signed %q", ErrInvalidScheme, s.Signed)
		}
		t = t[i+j+1:]
	}
	return out, nil
}

// sortedParams is Twilio's rendering of a form-encoded body: the parameters sorted by
// name (a repeated name's values in order), each name followed by its value, no separators.
func sortedParams(body []byte) (string, error) {
	if len(body) == 0 {
		return "", nil
	}
	q, err := url.ParseQuery(string(body))
	if err != nil {
		return "", err
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		vs := q[k]
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	return b.String(), nil
}
