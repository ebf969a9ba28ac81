package proxy_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil/tlstest"
	"github.com/authpipe/authpipe-proxy/oauthflow/githubapptest"
	"github.com/authpipe/authpipe-proxy/oauthflow/oauthtest"
)

// TestSentinelsNeverLeak plants secrets (the bootstrap key, connections' API keys, a
// client secret, created API keys), drives every endpoint including failing calls, and
// then requires that no sentinel appears in any log line, any error body, any audit
// event, or in plaintext anywhere in the database.
func TestSentinelsNeverLeak(t *testing.T) {
	// Low anomaly thresholds: a finding's audit event and log line are scanned too.
	h := newHarness(t, "sqlite", map[string]string{"AUTHPIPE_LOG_FORMAT": "text", "AUTHPIPE_ANOMALY_WINDOW": "2s",
		"AUTHPIPE_ANOMALY_REFUSED_READS": "3"})
	h.anomaliesExpected = true
	const apiKeySentinel = "sk_live_SENTINELapikey0123456789"
	const clientSecretSentinel = "SENTINELclientsecret0123456789"
	admin := h.createKey("admin")
	reader := h.createKey("tokens:read")
	const webhookSecretSentinel = "whsec_SENTINELwebhook0123456789"
	const webhookSecretSentinel2 = "whsec_SENTINELwebhookrotated0123"
	const basicPasswordSentinel = "SENTINELbasicpassword0123456789"
	sentinels := []string{bootstrapKey, apiKeySentinel, clientSecretSentinel, admin, reader, webhookSecretSentinel, webhookSecretSentinel2,
		basicPasswordSentinel}

	// Providers, including invalid ones carrying the secret.
	prov := map[string]any{
		"client_id": "cid", "client_secret": clientSecretSentinel,
		"authorization_url": "https://auth.example.com/authorize", "token_url": "https://auth.example.com/token",
		"callback_urls": []string{"https://proxy.example.com/v1/oauth/callback"},
	}
	h.expect(h.do("PUT", "/v1/providers/acme", admin, prov), 200, "")
	prov["token_url"] = "https://10.0.0.1/token?secret=" + clientSecretSentinel
	h.expect(h.do("PUT", "/v1/providers/acme2", admin, prov), 400, "unsafe_url")
	prov["token_url"], prov["callback_urls"] = "https://auth.example.com/token", []string{"https://" + clientSecretSentinel + "@x.example.com/cb"}
	h.expect(h.do("PUT", "/v1/providers/acme3", admin, prov), 400, "invalid_callback_url")
	h.expect(h.do("PUT", "/v1/providers/acme4", admin, `{"client_secret": 12, "x":"`+clientSecretSentinel+`"}`), 400, "invalid_request")
	h.do("GET", "/v1/providers", admin, nil)
	h.do("GET", "/v1/providers/acme", admin, nil)

	// A tls_client_auth provider (RFC 8705): refused bundles carrying the key, a good one,
	// a next one, its views. The key's PEM and its private scalar must appear nowhere, not
	// even in a successful body.
	ca := tlstest.NewCA(t, "Sentinel CA")
	leaf, other := ca.Client(t, "sentinel-mtls"), ca.Client(t, "sentinel-other")
	keyLines := strings.Split(string(leaf.KeyPEM), "\n")
	keySentinels := []string{keyLines[2], leaf.Key.D.String(), leaf.Key.D.Text(16)}
	mtls := map[string]any{"auth_mode": "oauth2_client_credentials", "client_id": "cid", "token_auth_method": "tls_client_auth",
		"token_url": "https://auth.example.com/token", "api_base_url": "https://api.example.com", "client_secret": string(leaf.KeyPEM)}
	h.expect(h.do("PUT", "/v1/providers/acme-mtls", admin, mtls), 400, "invalid_request")
	mtls["client_secret"] = string(other.CertPEM) + string(leaf.KeyPEM)
	h.expect(h.do("PUT", "/v1/providers/acme-mtls", admin, mtls), 400, "invalid_request")
	mtls["client_secret"] = string(leaf.CertPEM) + string(leaf.KeyPEM)
	pv := h.expect(h.do("PUT", "/v1/providers/acme-mtls", admin, mtls), 200, "")
	require.Equal(t, "CN=sentinel-mtls", pv.Body["client_certificate"].(map[string]any)["subject"])
	mtls["client_secret_next"] = "garbage" + string(leaf.KeyPEM)
	delete(mtls, "client_secret")
	h.expect(h.do("PUT", "/v1/providers/acme-mtls", admin, mtls), 400, "invalid_request")
	mtls["client_secret_next"] = string(other.CertPEM) + string(other.KeyPEM)
	h.expect(h.do("PUT", "/v1/providers/acme-mtls", admin, mtls), 200, "")
	keySentinels = append(keySentinels, other.Key.D.String())
	h.do("GET", "/v1/providers/acme-mtls", admin, nil)
	h.do("GET", "/v1/providers", admin, nil)
	for _, k := range keySentinels {
		for _, b := range h.bodies {
			require.NotContains(t, b, k, "a client certificate's key reached a response body")
		}
	}
	sentinels = append(sentinels, keySentinels...)

	// Connections: good and bad.
	c := h.expect(h.do("POST", "/v1/connections", admin, map[string]any{
		"provider": "stripe", "end_user_id": "u1", "api_key": apiKeySentinel}), 201, "")
	id := c.Body["id"].(string)
	h.expect(h.do("POST", "/v1/connections", admin, map[string]any{
		"provider": "no-such", "end_user_id": "u1", "api_key": apiKeySentinel}), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/connections", admin, map[string]any{
		"provider": "stripe", "end_user_id": "", "api_key": apiKeySentinel}), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/connections", admin, `{"provider":"stripe","api_key":"`+apiKeySentinel+`"`), 400, "invalid_request")
	h.do("GET", "/v1/connections", reader, nil)
	h.do("GET", "/v1/connections/"+id, reader, nil)

	// A basic connection's password: created, refused in malformed requests, read.
	h.expect(h.do("PUT", "/v1/providers/basicco", admin, map[string]any{"auth_mode": "basic", "api_base_url": "https://api.basicco.example"}), 200, "")
	pair := func(user string) map[string]any {
		return map[string]any{"provider": "basicco", "end_user_id": "u3", "basic": map[string]any{"username": user, "password": basicPasswordSentinel}}
	}
	bc := h.expect(h.do("POST", "/v1/connections", admin, pair("ann@basicco.example")), 201, "")
	h.expect(h.do("POST", "/v1/connections", admin, pair("ann:"+basicPasswordSentinel)), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/connections", admin, withField(pair("ann"), "provider", "stripe")), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/connections", admin, withField(pair("ann"), "api_key", basicPasswordSentinel)), 400, "invalid_request")
	h.expect(h.do("POST", "/v1/connections", admin, `{"provider":"basicco","end_user_id":"u3","basic":"`+basicPasswordSentinel+`"}`), 400, "invalid_request")
	btok := h.expect(h.do("GET", "/v1/connections/"+bc.Body["id"].(string)+"/token", reader, nil), 200, "")
	require.Equal(t, basicPasswordSentinel, btok.Body["password"], "the token endpoint is the one place it may appear")
	h.do("GET", "/v1/proxy/"+bc.Body["id"].(string)+"/x", reader, nil) // unresolvable host: a failing forward

	// Provider webhook signing secrets (package inbound): at creation, rotated, on a
	// provider configuration, refused deliveries carrying them.
	wc := h.expect(h.do("POST", "/v1/connections", admin, map[string]any{
		"provider": "github-pat", "end_user_id": "u2", "api_key": apiKeySentinel, "webhook_secret": webhookSecretSentinel}), 201, "")
	require.Equal(t, webhookSecretSentinel[:4], wc.Body["webhook_secret_prefix"])
	wid := wc.Body["id"].(string)
	h.expect(h.do("PUT", "/v1/connections/"+wid+"/webhook-secret", admin, map[string]any{
		"secret": webhookSecretSentinel2, "keep_previous": true}), 200, "")
	h.expect(h.do("PUT", "/v1/connections/"+wid+"/webhook-secret", admin, `{"secret":12,"x":"`+webhookSecretSentinel+`"}`), 400, "invalid_request")
	h.expect(h.do("PUT", "/v1/providers/acme/webhook-secret", admin, map[string]any{"secret": webhookSecretSentinel}), 200, "")
	h.do("GET", "/v1/connections/"+wid+"/webhook-secret", admin, nil)
	h.expect(h.do("POST", "/v1/inbound/github-pat/"+wid, "", webhookSecretSentinel), 401, "invalid_signature")
	h.do("DELETE", "/v1/connections/"+wid+"/webhook-secret/previous", admin, nil)
	tok := h.expect(h.do("GET", "/v1/connections/"+id+"/token", reader, nil), 200, "")
	require.Equal(t, apiKeySentinel, tok.Body["api_key"], "the token endpoint is the one place it may appear")
	h.do("GET", "/v1/connections/"+id+"/token", admin+"x", nil)
	h.do("GET", "/v1/connections/"+id+"/token?access_token="+apiKeySentinel, reader, nil)
	h.do("GET", "/v1/connections/"+apiKeySentinel+"/token", reader, nil)
	h.do("DELETE", "/v1/connections/"+id, admin, nil)
	h.do("GET", "/v1/connections/"+id+"/token", reader, nil)

	// Machine grants: the end user's own client secret (a good one, a refused one) and a
	// service-account key, sealed as grant secrets; minted tokens read.
	const m2mSecretSentinel = "SENTINELm2mclientsecret0123456789"
	const m2mWrongSentinel = "SENTINELm2mwrongsecret0123456789"
	pemKey := machinePEM(t)
	keyLine := strings.Split(pemKey, "\n")[2] // 64 characters of the private key's body
	sentinels = append(sentinels, m2mSecretSentinel, m2mWrongSentinel, keyLine)
	m2m := oauthtest.NewMachine(t, oauthtest.MachineOptions{AnonymousJWTBearer: true,
		Clients: []oauthtest.MachineClient{{ID: "own", Secret: m2mSecretSentinel}},
		Issuers: []oauthtest.TrustedIssuer{{Issuer: "bot@example.iam", Subject: "bot@example.iam", PublicKey: machineKey.Public()}}})
	for key, mode := range map[string]string{"m2m": "oauth2_client_credentials", "sa": "jwt_bearer"} {
		method := map[bool]string{true: "none", false: "client_secret_basic"}[mode == "jwt_bearer"]
		h.expect(h.do("PUT", "/v1/providers/"+key, admin, map[string]any{"auth_mode": mode, "token_url": m2m.TokenURL(),
			"api_base_url": m2m.URL + "/api", "token_auth_method": method}), 200, "")
	}
	mc := h.expect(h.do("POST", "/v1/connections", admin, map[string]any{"provider": "m2m", "end_user_id": "u3",
		"client_credentials": map[string]any{"client_id": "own", "client_secret": m2mSecretSentinel}}), 201, "")
	h.expect(h.do("POST", "/v1/connections", admin, map[string]any{"provider": "m2m", "end_user_id": "u3",
		"client_credentials": map[string]any{"client_id": "own", "client_secret": m2mWrongSentinel}}), 400, "invalid_credential")
	sc := h.expect(h.do("POST", "/v1/connections", admin, map[string]any{"provider": "sa", "end_user_id": "u3",
		"service_account": map[string]any{"client_email": "bot@example.iam", "private_key": pemKey}}), 201, "")
	h.expect(h.do("POST", "/v1/connections", admin, map[string]any{"provider": "sa", "end_user_id": "u3",
		"service_account": map[string]any{"client_email": "bot@example.iam", "private_key": keyLine}}), 400, "invalid_request")
	for _, c := range []resp{mc, sc} {
		h.expect(h.do("GET", "/v1/connections/"+c.Body["id"].(string)+"/token", reader, nil), 200, "")
		h.do("POST", "/v1/connections/"+c.Body["id"].(string)+"/refresh", admin, nil)
	}

	// A GitHub App: its private key (refused when malformed, then configured), an
	// installation's cached token and narrowed tokens, a refused narrowing. The key, and
	// the installation tokens, appear in no log, audit event, error body or database
	// column (the tokens only in the token endpoint's own answers).
	gh := githubapptest.New(t, githubapptest.Options{})
	appKeyLine := strings.Split(gh.PrivateKeyPEM(), "\n")[3]
	sentinels = append(sentinels, appKeyLine)
	app := map[string]any{"auth_mode": "github_app", "client_id": gh.AppID(), "api_base_url": gh.URL,
		"token_url":         gh.URL + "/app/installations/{installation_id}/access_tokens",
		"connection_config": []map[string]any{{"name": "installation_id", "pattern": "^[0-9]{1,20}$"}},
		"client_secret":     "-----BEGIN RSA PRIVATE KEY-----\n" + appKeyLine + "\n-----END RSA PRIVATE KEY-----\n"}
	h.expect(h.do("PUT", "/v1/providers/ghapp", admin, app), 400, "invalid_request")
	app["client_secret"] = gh.PrivateKeyPEM()
	h.expect(h.do("PUT", "/v1/providers/ghapp", admin, app), 200, "")
	gc := h.expect(h.do("POST", "/v1/connections", admin, map[string]any{"provider": "ghapp", "end_user_id": "u4",
		"installation_id": "1001"}), 201, "")
	gid := gc.Body["id"].(string)
	sentinels = append(sentinels, gh.Last())
	h.expect(h.do("GET", "/v1/connections/"+gid+"/token", reader, nil), 200, "")
	nt := h.expect(h.do("GET", "/v1/connections/"+gid+"/token?repositories=alpha&permissions=contents:read", reader, nil), 200, "")
	sentinels = append(sentinels, nt.Body["access_token"].(string))
	h.expect(h.do("GET", "/v1/connections/"+gid+"/token?repositories=delta", reader, nil), 422, "narrowing_refused")
	h.expect(h.do("GET", "/v1/connections/"+gid+"/token?repositories="+url.QueryEscape("octo/"+appKeyLine), reader, nil), 400, "invalid_request")
	h.do("GET", "/v1/audit", admin, nil)

	// Keys, workspaces, audit, and unauthenticated noise carrying secrets.
	ws := h.expect(h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": "other"}), 201, "")
	sentinels = append(sentinels, ws.Body["api_key"].(map[string]any)["key"].(string))
	h.do("POST", "/v1/workspaces", bootstrapKey, map[string]any{"name": apiKeySentinel})
	h.do("GET", "/v1/workspaces", bootstrapKey, nil)
	h.do("GET", "/v1/api-keys", admin, nil)
	h.do("DELETE", "/v1/api-keys/apk_nope", admin, nil)
	h.do("GET", "/v1/audit?after="+apiKeySentinel, admin, nil)
	h.do("GET", "/v1/audit/verify", admin, nil)
	h.do("GET", "/v1/"+bootstrapKey, bootstrapKey, nil)
	h.do("POST", "/v1/api-keys", bootstrapKey, strings.Repeat("x", 2<<20))
	// Probing with the key (refused reads naming a secret): a security.anomaly, whose
	// event and log line carry counts only.
	for range 5 {
		h.do("GET", "/v1/connections/"+id+"/token?x="+apiKeySentinel, reader, nil)
	}
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), "security anomaly") }, 15*time.Second,
		50*time.Millisecond)
	h.app.Audit.Stop(t.Context())

	logs := h.logs.String()
	require.Contains(t, logs, "/v1/connections/:id/token", "the access log ran")
	var auditDump []string
	require.NoError(t, h.app.Store.DB().Raw(
		"SELECT type || actor || connection_id || outcome || error_code || data FROM audit_events").Scan(&auditDump).Error)
	require.NotEmpty(t, auditDump)

	for _, s := range sentinels {
		require.NotContains(t, logs, s, "a sentinel reached the logs")
		for _, a := range auditDump {
			require.NotContains(t, a, s, "a sentinel reached an audit event")
		}
		for _, b := range h.bodies {
			if strings.Contains(b, `"code":`) {
				require.NotContains(t, b, s, "a sentinel reached an error body")
			}
		}
		requireNotInDatabase(t, h, s)
	}
}

// requireNotInDatabase scans every text and blob column of every table for s.
func requireNotInDatabase(t *testing.T, h *harness, s string) {
	t.Helper()
	var tables []string
	require.NoError(t, h.app.Store.DB().Raw("SELECT name FROM sqlite_master WHERE type = 'table'").Scan(&tables).Error)
	for _, table := range tables {
		rows, err := h.app.Store.DB().Raw(fmt.Sprintf("SELECT * FROM %q", table)).Rows()
		require.NoError(t, err)
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			require.NoError(t, rows.Scan(ptrs...))
			for i, v := range vals {
				require.NotContains(t, fmt.Sprint(v), s, "plaintext sentinel in %s.%s", table, cols[i])
				if b, ok := v.([]byte); ok {
					require.NotContains(t, string(b), s, "plaintext sentinel in %s.%s", table, cols[i])
				}
			}
		}
		require.NoError(t, rows.Close())
	}
}
