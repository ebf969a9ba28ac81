package pkcs11

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
)

const softhsmLib = "/usr/lib/softhsm/libsofthsm2.so"

func TestParseURI(t *testing.T) {
	base := "pkcs11:token=authpipe;object=kek?module-path=" + softhsmLib + "&pin-source=file:/run/pin"
	tests := []struct {
		name    string
		uri     string
		want    *URI
		wantErr string // substring; "" means success
	}{
		{name: "minimal", uri: base,
			want: &URI{Token: "authpipe", Object: "kek", ModulePath: softhsmLib, PinFile: "/run/pin"}},
		{name: "scheme is case-insensitive", uri: "PKCS11:token=a;object=b?module-path=/m.so&pin-source=/p",
			want: &URI{Token: "a", Object: "b", ModulePath: "/m.so", PinFile: "/p"}},
		{name: "id and type", uri: "pkcs11:token=a;object=b;id=%01%a2;type=secret-key?module-path=/m.so&pin-source=/p",
			want: &URI{Token: "a", Object: "b", ID: []byte{0x01, 0xa2}, ModulePath: "/m.so", PinFile: "/p"}},
		{name: "percent-encoded labels", uri: "pkcs11:token=my%20token;object=a%3Bb%2Fc?module-path=/m%20dir/m.so&pin-source=/p",
			want: &URI{Token: "my token", Object: "a;b/c", ModulePath: "/m dir/m.so", PinFile: "/p"}},
		{name: "attribute order is free", uri: "pkcs11:object=b;token=a?pin-source=/p&module-path=/m.so",
			want: &URI{Token: "a", Object: "b", ModulePath: "/m.so", PinFile: "/p"}},
		{name: "path may hold & and =", uri: "pkcs11:token=a&b;object=x=y?module-path=/m.so&pin-source=/p",
			want: &URI{Token: "a&b", Object: "x=y", ModulePath: "/m.so", PinFile: "/p"}},
		{name: "pin-source file:///", uri: "pkcs11:token=a;object=b?module-path=/m.so&pin-source=file:///run/p",
			want: &URI{Token: "a", Object: "b", ModulePath: "/m.so", PinFile: "/run/p"}},
		{name: "pin-source file://localhost/", uri: "pkcs11:token=a;object=b?module-path=/m.so&pin-source=file://localhost/run/p",
			want: &URI{Token: "a", Object: "b", ModulePath: "/m.so", PinFile: "/run/p"}},
		{name: "pin-value", uri: "pkcs11:token=a;object=b?module-path=/m.so&pin-value=1234",
			want: &URI{Token: "a", Object: "b", ModulePath: "/m.so", pinValue: "1234"}},
		{name: "no pin parses (Open asks for it)", uri: "pkcs11:token=a;object=b?module-path=/m.so",
			want: &URI{Token: "a", Object: "b", ModulePath: "/m.so"}},
		{name: "x-max-sessions", uri: base + "&x-max-sessions=4",
			want: &URI{Token: "authpipe", Object: "kek", ModulePath: softhsmLib, PinFile: "/run/pin", MaxSessions: 4}},

		{name: "other scheme", uri: "local:///tmp/k", wantErr: "scheme must be"},
		{name: "empty", uri: "", wantErr: "scheme must be"},
		{name: "no token", uri: "pkcs11:object=b?module-path=/m.so", wantErr: "token=<label> is required"},
		{name: "no object", uri: "pkcs11:token=a?module-path=/m.so", wantErr: "object=<key label> is required"},
		{name: "no module", uri: "pkcs11:token=a;object=b", wantErr: "module-path=<absolute path"},
		{name: "relative module", uri: "pkcs11:token=a;object=b?module-path=libsofthsm2.so", wantErr: "module-path must be absolute"},
		{name: "module-name", uri: "pkcs11:token=a;object=b?module-name=softhsm2", wantErr: "module-name is not supported"},
		{name: "slot-id", uri: "pkcs11:token=a;object=b;slot-id=1?module-path=/m.so", wantErr: "select the token by its label"},
		{name: "unknown path attribute", uri: "pkcs11:token=a;object=b;colour=red?module-path=/m.so", wantErr: `unknown path attribute "colour"`},
		{name: "unknown query attribute", uri: "pkcs11:token=a;object=b?module-path=/m.so&x-foo=1", wantErr: `unknown query attribute "x-foo"`},
		{name: "duplicate attribute", uri: "pkcs11:token=a;token=b;object=c?module-path=/m.so", wantErr: "appears twice"},
		{name: "duplicate query attribute", uri: "pkcs11:token=a;object=c?module-path=/m.so&module-path=/n.so", wantErr: "appears twice"},
		{name: "type private", uri: "pkcs11:token=a;object=b;type=private?module-path=/m.so", wantErr: "type must be secret-key"},
		{name: "id not encoded", uri: "pkcs11:token=a;object=b;id=ab?module-path=/m.so", wantErr: "id must be percent-encoded"},
		{name: "empty id", uri: "pkcs11:token=a;object=b;id=?module-path=/m.so", wantErr: "id must be percent-encoded"},
		{name: "bad percent", uri: "pkcs11:token=a%zz;object=b?module-path=/m.so", wantErr: "invalid percent-encoding"},
		{name: "truncated percent", uri: "pkcs11:token=a;object=b%4?module-path=/m.so", wantErr: "truncated percent-encoding"},
		{name: "raw space", uri: "pkcs11:token=a b;object=c?module-path=/m.so", wantErr: "must be percent-encoded"},
		{name: "slash in path", uri: "pkcs11:token=a/b;object=c?module-path=/m.so", wantErr: "must be percent-encoded"},
		{name: "fragment", uri: "pkcs11:token=a;object=b?module-path=/m.so#x", wantErr: "fragment"},
		{name: "attribute without value form", uri: "pkcs11:token;object=b?module-path=/m.so", wantErr: "name=value"},
		{name: "long token label", uri: "pkcs11:token=" + fmt.Sprintf("%033d", 0) + ";object=b?module-path=/m.so", wantErr: "longer than 32"},
		{name: "both pins", uri: "pkcs11:token=a;object=b?module-path=/m.so&pin-source=/p&pin-value=1", wantErr: "not both"},
		{name: "pin-source https", uri: "pkcs11:token=a;object=b?module-path=/m.so&pin-source=https://x/p", wantErr: "only file: URIs"},
		{name: "pin-source remote host", uri: "pkcs11:token=a;object=b?module-path=/m.so&pin-source=file://host/p", wantErr: "remote host"},
		{name: "pin-source relative", uri: "pkcs11:token=a;object=b?module-path=/m.so&pin-source=pin.txt", wantErr: "must be absolute"},
		{name: "x-max-sessions zero", uri: base + "&x-max-sessions=0", wantErr: "x-max-sessions must be"},
		{name: "x-max-sessions huge", uri: base + "&x-max-sessions=100000", wantErr: "x-max-sessions must be"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := ParseURI(tc.uri)
			if tc.wantErr != "" {
				require.ErrorIs(t, err, kms.ErrConfig)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, u)
		})
	}
}

func TestParseURINeverEchoesThePIN(t *testing.T) {
	const pin = "S3cr3t-PIN-4711"
	for _, uri := range []string{
		"pkcs11:token=a;object=b?module-path=rel.so&pin-value=" + pin,
		"pkcs11:token=a;object=b?module-path=/m.so&pin-value=" + pin + "&pin-source=/p",
		"pkcs11:token=a;object=b;bogus=" + pin + "?module-path=/m.so&pin-value=" + pin,
		"pkcs11:token=a;object=b?module-path=/m.so&pin-value=" + pin + "&x-max-sessions=" + pin,
		"pkcs11:token=a;object=b?module-path=/m.so&pin-value=" + pin + "%zz",
	} {
		_, err := ParseURI(uri)
		require.Error(t, err)
		require.NotContains(t, err.Error(), pin)
	}

	u, err := ParseURI("pkcs11:token=a;object=b?module-path=/m.so&pin-value=" + pin)
	require.NoError(t, err)
	for _, s := range []string{u.String(), fmt.Sprintf("%v", u), fmt.Sprintf("%+v", u), fmt.Sprintf("%#v", u), fmt.Sprintf("%+v", *u), fmt.Sprintf("%#v", *u), logged(u), u.KEKID()} {
		require.NotContains(t, s, pin)
	}
	got, err := u.PIN()
	require.NoError(t, err)
	require.Equal(t, pin, got)
}

func logged(v any) string {
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("open", "uri", v)
	slog.New(slog.NewJSONHandler(&b, nil)).Info("open", "uri", v)
	return b.String()
}

func TestURIStringRoundTrips(t *testing.T) {
	u := &URI{Token: "tok en;&", Object: "k/e?y%", ID: []byte{0, 0xff}, ModulePath: "/opt/hsm lib/p11.so",
		PinFile: "/run/secrets/pin file", MaxSessions: 3}
	back, err := ParseURI(u.String())
	require.NoError(t, err)
	require.Equal(t, u, back)
}

func TestKEKID(t *testing.T) {
	u := &URI{Token: "tok", Object: "kek"}
	require.Equal(t, "pkcs11:tok/kek", u.KEKID())
	u.ID = []byte{0x01, 0xab}
	require.Equal(t, "pkcs11:tok/kek/01ab", u.KEKID())
}

func TestURIPIN(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
		return p
	}
	tests := []struct {
		name    string
		u       *URI
		want    string
		wantErr string
	}{
		{name: "file with newline", u: &URI{Token: "t", PinFile: write("a", "5678\n")}, want: "5678"},
		{name: "file with CRLF", u: &URI{Token: "t", PinFile: write("b", "5678\r\n")}, want: "5678"},
		{name: "file without newline", u: &URI{Token: "t", PinFile: write("c", "p w")}, want: "p w"},
		{name: "first line only", u: &URI{Token: "t", PinFile: write("d", "one\ntwo\n")}, want: "one"},
		{name: "empty file", u: &URI{Token: "t", PinFile: write("e", "\n")}, wantErr: "is empty"},
		{name: "missing file", u: &URI{Token: "t", PinFile: filepath.Join(dir, "nope")}, wantErr: "no such file"},
		{name: "no pin at all", u: &URI{Token: "t"}, wantErr: "pin-source=file:<path> (or pin-value) is required"},
		{name: "value", u: &URI{Token: "t", pinValue: "v"}, want: "v"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pin, err := tc.u.PIN()
			if tc.wantErr != "" {
				require.ErrorIs(t, err, kms.ErrConfig)
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, pin)
		})
	}
}
