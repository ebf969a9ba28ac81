package config_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/config"
)

func TestRedaction(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"sqlite", "sqlite://./data/a.db", "sqlite://./data/a.db"},
		{"postgres without password", "postgres://authpipe@db/x?sslmode=verify-full", "postgres://authpipe@db/x?sslmode=verify-full"},
		{"postgres password", "postgres://authpipe:s3cret@db:5432/x", "postgres://authpipe:xxxxx@db:5432/x"},
		{"password with @ and :", "postgres://u:p@ss:w@db/x", "postgres://u:xxxxx@db/x"},
		{"password query parameter", "postgres://u@db/x?sslmode=require&password=s3cret", "postgres://u@db/x?sslmode=require&password=xxxxx"},
		{"unparseable URL", "postgres://u:s3cret@db:port/x?PASSWORD=s3cret", "postgres://u:xxxxx@db:port/x?PASSWORD=xxxxx"},
		{"pkcs11 pin-value, token label kept", "pkcs11:token=authpipe;object=kek;pin-value=1234?module-path=/lib/p.so", "pkcs11:token=authpipe;object=kek;pin-value=xxxxx?module-path=/lib/p.so"},
		{"pkcs11 pin-value first", "pkcs11:pin-value=1234;token=a", "pkcs11:pin-value=xxxxx;token=a"},
		{"awskms arn", "awskms://arn:aws:kms:eu-west-1:1:key/k?region=eu-west-1", "awskms://arn:aws:kms:eu-west-1:1:key/k?region=eu-west-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, config.Config{DatabaseURL: tt.in}.RedactedDatabaseURL())
			// The same redaction applies to every URI the config shows.
			shown := config.Config{KEKPreviousURIs: []string{tt.in}, ControlPlaneURL: tt.in}.String()
			require.Contains(t, shown, "kek_previous_uris="+tt.want)
			require.Contains(t, shown, "control_plane_url="+tt.want)
		})
	}
}

// FuzzLoadNeverEchoesSecrets checks, for arbitrary settings, that the error is one line
// and that a secret shows up in it only where the same text shows up when the secret is
// replaced by a placeholder (that is, only as generic wording, never echoed).
func FuzzLoadNeverEchoesSecrets(f *testing.F) {
	f.Add("production", "db.internal:5432/x?sslmode=disable", "S3cretPassw0rd", "ap_short", "tok-abcdef123456", "local:///k", "http://cp")
	f.Add("dev", "h/x", "pw", "ap_0123456789abcdefghijklmnopqrstuvwxyz", "", "pkcs11:pin-value=9999", "")
	f.Add("production", "[::1]:bad/x", "p:w@x", "ap_\nnewline", "t", "vault-transit://v/t/k?tls=false", "https://u:p@cp")
	f.Fuzz(func(t *testing.T, profile, dbRest, dbPassword, key, token, kek, cpURL string) {
		load := func(pw, k, tok string) string {
			_, err := config.Load(nil, func(name string) (string, bool) {
				v, ok := map[string]string{
					config.EnvProfile:           profile,
					config.EnvDatabaseURL:       "postgres://u:" + pw + "@" + dbRest,
					config.EnvBootstrapAPIKey:   k,
					config.EnvControlPlaneToken: tok,
					config.EnvKEKURI:            kek,
					config.EnvControlPlaneURL:   cpURL,
				}[name]
				return v, ok
			})
			if err == nil {
				return ""
			}
			require.NotContains(t, err.Error(), "\n")
			return err.Error()
		}
		got := load(dbPassword, key, token)
		placeholder := load("PLACEHOLDERPW", "PLACEHOLDERKEY", "PLACEHOLDERTOKEN")
		for _, s := range []string{strings.TrimSpace(dbPassword), strings.TrimSpace(key), strings.TrimSpace(token)} {
			if len(s) < 4 {
				continue // too short to tell an echo from ordinary words
			}
			if strings.Contains(got, s) {
				require.Contains(t, placeholder, s, "secret echoed in %q", got)
			}
		}
	})
}
