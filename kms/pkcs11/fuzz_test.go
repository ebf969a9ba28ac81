package pkcs11

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
)

// FuzzParseURI checks the RFC 7512 parser on arbitrary input: it never panics, every
// error is a kms.ErrConfig, every URI it accepts names a token, a key and a module, and
// the redacted String form parses back to the same URI (minus the pin-value).
// Seeds: f.Add below and testdata/fuzz/FuzzParseURI.
func FuzzParseURI(f *testing.F) {
	for _, s := range []string{
		"pkcs11:token=authpipe;object=kek?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
		"pkcs11:token=a;object=b;id=%01%02;type=secret-key?module-path=/m.so&pin-value=1234&x-max-sessions=8",
		"pkcs11:token=my%20token;object=a%3Bb?module-path=/m.so&pin-source=file:///p",
		"pkcs11:object=b;token=a&b?pin-source=/p&module-path=/m.so",
		"pkcs11:token=a;token=b",
		"pkcs11:token=%zz",
		"pkcs11:?",
		"pkcs11:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ParseURI(raw)
		if err != nil {
			require.True(t, errors.Is(err, kms.ErrConfig), "error without ErrConfig: %v", err)
			return
		}
		require.NotEmpty(t, u.Token)
		require.LessOrEqual(t, len(u.Token), tokenLabelMax)
		require.NotEmpty(t, u.Object)
		require.NotEmpty(t, u.ModulePath)
		require.False(t, u.PinFile != "" && u.pinValue != "")

		back, err := ParseURI(u.String())
		require.NoError(t, err, "String() form %q does not parse", u.String())
		want := *u
		want.pinValue = ""
		if len(want.ID) == 0 {
			want.ID = nil
		}
		require.Equal(t, &want, back)
	})
}
