package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/app"
	"github.com/authpipe/authpipe-proxy/internal/config"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// TestImportCommand: `authpipe-proxy import FILE` imports grants obtained directly from the
// fosite provider, reports a bad line by number and code (never a value) and skips it,
// and a rerun of the same file stores nothing twice (resumable by external_id).
func TestImportCommand(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			t.Setenv(config.EnvDatabaseURL, storetest.URL(t, dialect))
			t.Setenv(config.EnvKEKURI, "local://"+filepath.Join(dir, "kek.key"))
			t.Setenv(config.EnvClientSecretKEKURI, "local://"+filepath.Join(dir, "cs-kek.key"))
			const cb = "http://127.0.0.1/cb"
			as := oauthtest.New(t, oauthtest.Options{AutoLogin: true, RedirectURIs: []string{cb}})

			cfg, err := config.Load(nil, os.LookupEnv)
			require.NoError(t, err)
			a, err := app.New(ctx, cfg, app.WithLogOutput(&bytes.Buffer{}))
			require.NoError(t, err)
			require.NoError(t, a.Bootstrap(ctx))
			raw := func(v any) json.RawMessage { b, _ := json.Marshal(v); return b }
			secret := vault.NewSecret(as.ClientSecret())
			_, err = a.Providers.Put(ctx, admin.DefaultWorkspaceID, providers.Caller{Actor: "test", Admin: true},
				providers.Request{Key: "fosite", ClientID: as.ClientID(), Scopes: []string{"read"}, Overrides: map[string]json.RawMessage{
					"display_name": raw("Fosite"), "auth_mode": raw("oauth2"), "authorization_url": raw(as.AuthorizationURL()),
					"token_url": raw(as.TokenURL()), "token_auth_method": raw("client_secret_basic")}}, &secret)
			require.NoError(t, err)
			a.Close()

			g1, g2 := as.Grant(t, cb, "read"), as.Grant(t, cb, "read")
			line := func(ext, access, refresh string) string {
				b, _ := json.Marshal(map[string]any{"provider": "fosite", "end_user_id": "user-" + ext, "external_id": ext,
					"oauth2": map[string]any{"access_token": access, "refresh_token": refresh,
						"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "scopes": []string{"read"}}})
				return string(b)
			}
			file := filepath.Join(dir, "grants.jsonl")
			require.NoError(t, os.WriteFile(file, []byte(strings.Join([]string{
				line("a", g1.AccessToken, g1.RefreshToken),
				line("b", "", "secret-refresh-SENTINEL"),                          // no access token
				`{"provider":"fosite","oauth2":{"access_token":"secret-SENTINEL-`, // not JSON
				"",
				line("c", g2.AccessToken, g2.RefreshToken),
			}, "\n")+"\n"), 0o600))

			var out, errOut bytes.Buffer
			require.Equal(t, 1, run([]string{"import", file}, &out, &errOut), errOut.String())
			require.Contains(t, out.String(), "4 line(s): 2 imported, 0 already imported, 2 failed")
			require.Contains(t, errOut.String(), "line 2: invalid_request (oauth2.access_token)")
			require.Contains(t, errOut.String(), "line 3: invalid_request")
			for _, s := range []string{g1.AccessToken, g1.RefreshToken, g2.RefreshToken, "SENTINEL"} {
				require.NotContains(t, out.String()+errOut.String(), s)
			}

			out.Reset()
			errOut.Reset()
			require.Equal(t, 1, run([]string{"import", file}, &out, &errOut))
			require.Contains(t, out.String(), "4 line(s): 0 imported, 2 already imported, 2 failed", "a rerun stores nothing twice")
			require.Contains(t, errOut.String(), fmt.Sprintf("line %d: invalid_request", 2))
		})
	}
}
