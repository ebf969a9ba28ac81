// Package formscan looks into form-encoded data (a URL query, a form body) for a
// parameter named access_token, the way any server might read it, without parsing the
// form into a map.
package formscan

import "bytes"

// HasAccessToken reports whether form-encoded data (a URL query or a form body) has a
// parameter named access_token, the way any server might read it: pairs are split on '&'
// and on ';' (which older parsers still take), and a name counts when, percent-decoded,
// it equals access_token ignoring case (access%5Ftoken, %61ccess_token, ACCESS_TOKEN; and
// Unicode case folding, so the Kelvin sign counts as k). A name with a malformed escape,
// which parsers reject or decode each their own way, counts when it merely contains
// access_token. It does not allocate unless a name has a malformed escape.
func HasAccessToken[T string | []byte](form T) bool {
	for len(form) > 0 {
		end := len(form)
		for i := 0; i < len(form); i++ {
			if form[i] == '&' || form[i] == ';' {
				end = i
				break
			}
		}
		name := form[:end]
		for i := 0; i < len(name); i++ {
			if name[i] == '=' {
				name = name[:i]
				break
			}
		}
		if isAccessTokenName(name) {
			return true
		}
		if end == len(form) {
			break
		}
		form = form[end+1:]
	}
	return false
}

var accessTokenName = []byte("access_token")

// maxAccessTokenName is the longest encoding of a name that can decode to access_token
// under case folding: 16 bytes of UTF-8 (ſ for each s, the Kelvin sign for k), each
// percent-encoded.
const maxAccessTokenName = 3 * 16

func isAccessTokenName[T string | []byte](name T) bool {
	if len(name) < len(accessTokenName) {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '%' && (i+2 >= len(name) || !ishex(name[i+1]) || !ishex(name[i+2])) {
			return malformedNameMentions(name)
		}
	}
	var buf [maxAccessTokenName]byte
	dec := buf[:0]
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch c {
		case '%':
			c = unhex(name[i+1])<<4 | unhex(name[i+2])
			i += 2
		case '+':
			c = ' '
		}
		if len(dec) == cap(dec) {
			return false // too long to be access_token
		}
		dec = append(dec, c)
	}
	return bytes.EqualFold(dec, accessTokenName)
}

// malformedNameMentions decodes a name with a malformed escape leniently (a bad escape
// stays as it is) and reports whether it contains access_token, ignoring ASCII case.
func malformedNameMentions[T string | []byte](name T) bool {
	lenient := make([]byte, 0, len(name))
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c == '%' && i+2 < len(name) && ishex(name[i+1]) && ishex(name[i+2]) {
			c = unhex(name[i+1])<<4 | unhex(name[i+2])
			i += 2
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lenient = append(lenient, c)
	}
	return bytes.Contains(lenient, accessTokenName)
}

func ishex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
