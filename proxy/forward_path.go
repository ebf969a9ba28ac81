package proxy

import (
	"errors"
	"net/url"
	"strings"
)

// confinePath joins basePath (the escaped path of a provider's api_base_url) and suffix
// (the still-escaped rest of /v1/proxy/{id}/...) so that the result can never name a
// resource outside basePath, whichever way the provider's server decodes it.
//
// Each segment of suffix is decoded once and refused when the decoded form is "." or ".."
// (also around a ";" matrix parameter: Tomcat's "..;"), holds a slash or backslash
// ("%2f", "%5c", raw "\"), a control character or NUL, or still holds a percent-escape
// (double encoding: "%252e%252e" decodes to "%2e%2e", which a second decoder turns into
// ".."). An empty segment is allowed only at the end (a trailing slash): "//" could turn
// the request target into an authority. Accepted segments are kept as the caller spelled
// them. The result is escaped; it starts with basePath (without its trailing slash).
func confinePath(basePath, suffix string) (string, error) {
	base := strings.TrimRight(basePath, "/")
	if strings.ContainsAny(base, "\\") {
		return "", errors.New("the base URL's path is not usable")
	}
	if suffix == "" {
		if base == "" {
			return "/", nil
		}
		return base, nil
	}
	if suffix[0] != '/' {
		return "", errors.New("the path must start with a slash")
	}
	segs := strings.Split(suffix[1:], "/")
	for i, seg := range segs {
		if seg == "" {
			if i == len(segs)-1 {
				continue
			}
			return "", errors.New("the path has an empty segment")
		}
		if err := checkSegment(seg); err != nil {
			return "", err
		}
	}
	return base + suffix, nil
}

func checkSegment(raw string) error {
	if strings.ContainsRune(raw, '\\') {
		return errors.New("the path contains a backslash")
	}
	dec, err := url.PathUnescape(raw)
	if err != nil {
		return errors.New("the path has a malformed percent-escape")
	}
	for i := 0; i < len(dec); i++ {
		switch ch := dec[i]; {
		case ch == '/' || ch == '\\':
			return errors.New("the path contains an encoded slash or backslash")
		case ch < 0x20 || ch == 0x7f:
			return errors.New("the path contains a control character")
		case ch == '%' && i+2 < len(dec) && isHex(dec[i+1]) && isHex(dec[i+2]):
			return errors.New("the path is encoded more than once")
		}
	}
	for _, part := range strings.Split(dec, ";") {
		if part == "." || part == ".." {
			return errors.New("the path contains a dot segment")
		}
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
