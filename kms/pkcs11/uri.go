package pkcs11

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Scheme is the URI scheme of this backend (RFC 7512 §3: "pkcs11:", no "//").
const Scheme = "pkcs11"

// Limits on what a URI may ask for.
const (
	// DefaultMaxSessions bounds the sessions one Backend keeps open on its token.
	DefaultMaxSessions = 16
	maxMaxSessions     = 1024
	// tokenLabelMax is the size of CK_TOKEN_INFO.label: a longer label can never match.
	tokenLabelMax = 32
	maxURILen     = 4096
)

// URI is a parsed RFC 7512 PKCS#11 URI naming an AES key on a token:
//
//	pkcs11:token=<label>;object=<key label>[;id=%xx...][;type=secret-key]
//	  ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/secrets/hsm-pin
//
// pin-value=<pin> is accepted too (RFC 7512 §2.3), but pin-source is preferred: a PIN in
// the URI ends up in environment variables, process listings and shell history. The PIN
// itself is never printed: String and LogValue leave it out.
type URI struct {
	Token       string // path attribute token: the token label, matched exactly
	Object      string // path attribute object: the key's CKA_LABEL
	ID          []byte // path attribute id: the key's CKA_ID (optional)
	ModulePath  string // query attribute module-path: absolute path of the PKCS#11 library
	PinFile     string // query attribute pin-source (file: URI or absolute path)
	MaxSessions int    // vendor query attribute x-max-sessions (0: DefaultMaxSessions)

	pinValue string // query attribute pin-value; unexported so that %v cannot show it
}

// ParseURI parses an RFC 7512 PKCS#11 URI. It rejects attributes it does not implement
// (slot-id, module-name, ...) rather than ignore them, and it never echoes the URI in an
// error, since the URI may carry a pin-value.
func ParseURI(raw string) (*URI, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: pkcs11 URI: "+format, append([]any{kms.ErrConfig}, args...)...)
	}
	if len(raw) > maxURILen {
		return nil, bad("longer than %d bytes", maxURILen)
	}
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || !strings.EqualFold(scheme, Scheme) {
		return nil, bad("scheme must be %q", Scheme+":")
	}
	path, query, _ := strings.Cut(rest, "?")
	if strings.ContainsRune(query, '#') {
		return nil, bad("a fragment is not allowed")
	}
	u := &URI{}
	seen := map[string]bool{}
	if path != "" {
		for _, attr := range strings.Split(path, ";") {
			name, value, err := splitAttr(attr, isPathChar)
			if err != nil {
				return nil, bad("path: %w", err)
			}
			if seen[name] {
				return nil, bad("attribute %q appears twice", name)
			}
			seen[name] = true
			switch name {
			case "token":
				u.Token = value
			case "object":
				u.Object = value
			case "id":
				if value == "" || !isAllPctEncoded(attr[len("id="):]) {
					return nil, bad("id must be percent-encoded bytes (RFC 7512 §2.3), e.g. id=%%01%%a2")
				}
				u.ID = []byte(value)
			case "type":
				if value != "secret-key" {
					return nil, bad("type=%q: the KEK is an AES key, type must be secret-key", value)
				}
			case "manufacturer", "model", "serial", "library-manufacturer", "library-description",
				"library-version", "slot-description", "slot-manufacturer", "slot-id":
				return nil, bad("attribute %q is not supported: select the token by its label (token=...)", name)
			default:
				return nil, bad("unknown path attribute %q", name)
			}
		}
	}
	if query != "" {
		for _, attr := range strings.Split(query, "&") {
			name, value, err := splitAttr(attr, isQueryChar)
			if err != nil {
				return nil, bad("query: %w", err)
			}
			if seen["?"+name] {
				return nil, bad("attribute %q appears twice", name)
			}
			seen["?"+name] = true
			switch name {
			case "module-path":
				u.ModulePath = value
			case "pin-source":
				p, err := pinSourcePath(value)
				if err != nil {
					return nil, bad("%w", err)
				}
				u.PinFile = p
			case "pin-value":
				u.pinValue = value
			case "x-max-sessions":
				n, err := strconv.Atoi(value)
				if err != nil || n < 1 || n > maxMaxSessions {
					return nil, bad("x-max-sessions must be an integer from 1 to %d", maxMaxSessions)
				}
				u.MaxSessions = n
			case "module-name":
				return nil, bad("module-name is not supported: give the library's absolute module-path")
			default:
				return nil, bad("unknown query attribute %q", name)
			}
		}
	}
	if err := u.validate(); err != nil {
		return nil, err
	}
	return u, nil
}

// validate checks that the URI names one key on one token through one module.
func (u *URI) validate() error {
	var problems []string
	switch {
	case u.Token == "":
		problems = append(problems, "token=<label> is required")
	case len(u.Token) > tokenLabelMax:
		problems = append(problems, fmt.Sprintf("token label is longer than %d bytes", tokenLabelMax))
	}
	if u.Object == "" {
		problems = append(problems, "object=<key label> is required")
	}
	switch {
	case u.ModulePath == "":
		problems = append(problems, "module-path=<absolute path of the PKCS#11 library> is required")
	case !filepath.IsAbs(u.ModulePath):
		problems = append(problems, "module-path must be absolute")
	}
	if u.PinFile != "" && u.pinValue != "" {
		problems = append(problems, "give pin-source or pin-value, not both")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: pkcs11 URI: %s", kms.ErrConfig, strings.Join(problems, "; "))
	}
	return nil
}

// HasPIN reports whether the URI says where the PIN comes from.
func (u *URI) HasPIN() bool { return u.PinFile != "" || u.pinValue != "" }

// PIN returns the user PIN: the pin-value, or the first line of the pin-source file.
func (u *URI) PIN() (string, error) {
	switch {
	case u.pinValue != "":
		return u.pinValue, nil
	case u.PinFile == "":
		return "", fmt.Errorf("%w: pkcs11 URI: pin-source=file:<path> (or pin-value) is required to log in to token %q",
			kms.ErrConfig, u.Token)
	}
	raw, err := os.ReadFile(u.PinFile)
	if err != nil {
		// The *PathError names the file, never its contents.
		return "", fmt.Errorf("%w: pkcs11 pin-source: %w", kms.ErrConfig, err)
	}
	pin, _, _ := strings.Cut(string(raw), "\n")
	pin = strings.TrimSuffix(pin, "\r")
	if pin == "" {
		return "", fmt.Errorf("%w: pkcs11 pin-source %s is empty", kms.ErrConfig, u.PinFile)
	}
	return pin, nil
}

// KEKID is the stable identity of the key, used as kms.KEK.ID:
// "pkcs11:" + token label + "/" + object label, then "/" + hex(CKA_ID) when an id is set.
func (u *URI) KEKID() string {
	id := Scheme + ":" + u.Token + "/" + u.Object
	if len(u.ID) > 0 {
		id += "/" + hex.EncodeToString(u.ID)
	}
	return id
}

// String formats the URI without the PIN value (a pin-source is kept: it is a path).
func (u URI) String() string {
	var b strings.Builder
	b.WriteString(Scheme + ":token=" + pctEncode(u.Token, isPathChar))
	b.WriteString(";object=" + pctEncode(u.Object, isPathChar))
	if len(u.ID) > 0 {
		b.WriteString(";id=")
		for _, c := range u.ID {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	b.WriteString("?module-path=" + pctEncode(u.ModulePath, isQueryChar))
	if u.PinFile != "" {
		b.WriteString("&pin-source=" + pctEncode("file:"+u.PinFile, isQueryChar))
	}
	if u.MaxSessions != 0 {
		b.WriteString("&x-max-sessions=" + strconv.Itoa(u.MaxSessions))
	}
	return b.String()
}

// GoString keeps %#v from printing the unexported PIN.
func (u URI) GoString() string { return "pkcs11.URI(" + u.String() + ")" }

// LogValue implements slog.LogValuer with String.
func (u URI) LogValue() slog.Value { return slog.StringValue(u.String()) }

func (u *URI) maxSessions() int {
	if u.MaxSessions == 0 {
		return DefaultMaxSessions
	}
	return u.MaxSessions
}

// pinSourcePath accepts "file:/abs", "file:///abs", "file://localhost/abs" or "/abs".
func pinSourcePath(v string) (string, error) {
	p := v
	if rest, ok := strings.CutPrefix(v, "file:"); ok {
		p = rest
		if host, ok := strings.CutPrefix(rest, "//"); ok {
			h, tail, _ := strings.Cut(host, "/")
			if h != "" && h != "localhost" {
				return "", fmt.Errorf("pin-source: file URI with a remote host is not supported")
			}
			p = "/" + tail
		}
	} else if strings.Contains(v, ":") && !strings.HasPrefix(v, "/") {
		return "", fmt.Errorf("pin-source: only file: URIs and absolute paths are supported")
	}
	if !filepath.IsAbs(p) || strings.ContainsRune(p, 0) {
		return "", fmt.Errorf("pin-source: the PIN file path must be absolute")
	}
	return filepath.Clean(p), nil
}

// splitAttr splits name=value, checks the characters against RFC 7512's grammar and
// percent-decodes the value.
func splitAttr(attr string, allowed func(byte) bool) (name, value string, err error) {
	name, raw, ok := strings.Cut(attr, "=")
	if !ok || name == "" {
		return "", "", fmt.Errorf("attribute without a name=value form")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "", "", fmt.Errorf("invalid character in attribute name")
		}
	}
	value, err = pctDecode(raw, allowed)
	if err != nil {
		return "", "", fmt.Errorf("attribute %q: %w", name, err)
	}
	return name, value, nil
}

func pctDecode(s string, allowed func(byte) bool) (string, error) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '%':
			if i+2 >= len(s) {
				return "", fmt.Errorf("truncated percent-encoding")
			}
			hi, ok1 := unhex(s[i+1])
			lo, ok2 := unhex(s[i+2])
			if !ok1 || !ok2 {
				return "", fmt.Errorf("invalid percent-encoding")
			}
			b.WriteByte(hi<<4 | lo)
			i += 2
		case allowed(c):
			b.WriteByte(c)
		default:
			return "", fmt.Errorf("character %q must be percent-encoded", c)
		}
	}
	return b.String(), nil
}

func pctEncode(s string, allowed func(byte) bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; allowed(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func isAllPctEncoded(s string) bool {
	if len(s)%3 != 0 {
		return false
	}
	for i := 0; i < len(s); i += 3 {
		_, ok1 := unhex(s[i+1])
		_, ok2 := unhex(s[i+2])
		if s[i] != '%' || !ok1 || !ok2 {
			return false
		}
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// RFC 7512 §2.3: unreserved, pk11-res-avail, and "&" in the path or "/", "?", "|" in the
// query. Everything else (including ";" in the path and "&" in the query) is
// percent-encoded.
func isUnreserved(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func isResAvail(c byte) bool { return strings.IndexByte(":[]@!$'()*+,=", c) >= 0 }

func isPathChar(c byte) bool { return isUnreserved(c) || isResAvail(c) || c == '&' }

func isQueryChar(c byte) bool {
	return isUnreserved(c) || isResAvail(c) || c == '/' || c == '?' || c == '|'
}
