package transittest_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms/vaulttransit/transittest"
)

// call speaks raw HTTP so that these tests check the wire format, not a client library.
func call(t *testing.T, srv *transittest.Server, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		require.NoError(t, json.NewEncoder(&buf).Encode(body))
	}
	req, err := http.NewRequest(method, srv.URL()+"/v1/"+path, &buf)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("X-Vault-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	if resp.StatusCode != http.StatusNoContent {
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, out
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestWireFormat(t *testing.T) {
	srv := transittest.New(t)
	root := srv.RootToken()

	status, out := call(t, srv, http.MethodPost, "transit/encrypt/k", "", map[string]any{"plaintext": b64("x")})
	require.Equal(t, http.StatusForbidden, status, "no token")
	require.Equal(t, map[string]any{"errors": []any{"permission denied"}}, out)
	status, _ = call(t, srv, http.MethodPost, "transit/encrypt/k", "hvs.guess", map[string]any{"plaintext": b64("x")})
	require.Equal(t, http.StatusForbidden, status, "unknown token")

	status, out = call(t, srv, http.MethodPost, "transit/encrypt/k", root,
		map[string]any{"plaintext": b64("sixteen byte dek"), "associated_data": b64("ws_1")})
	require.Equal(t, http.StatusOK, status)
	data := out["data"].(map[string]any)
	ct := data["ciphertext"].(string)
	require.EqualValues(t, 1, data["key_version"])
	body, ok := strings.CutPrefix(ct, "vault:v1:")
	require.True(t, ok, ct)
	raw, err := base64.StdEncoding.DecodeString(body)
	require.NoError(t, err)
	require.Len(t, raw, 12+16+16, "96-bit nonce ‖ ciphertext ‖ 128-bit tag")

	for _, tc := range []struct {
		name, ct, aad string
		status        int
		msg           string
	}{
		{"right aad", ct, b64("ws_1"), 200, ""},
		{"wrong aad", ct, b64("ws_2"), 400, "cipher: message authentication failed"},
		{"no aad", ct, "", 400, "cipher: message authentication failed"},
		{"no prefix", body, b64("ws_1"), 400, "invalid ciphertext: no prefix"},
		{"too new", "vault:v9:" + body, b64("ws_1"), 400, "invalid ciphertext: version is too new"},
		{"bad base64", "vault:v1:!!!", b64("ws_1"), 400, "invalid ciphertext: could not decode base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := map[string]any{"ciphertext": tc.ct}
			if tc.aad != "" {
				req["associated_data"] = tc.aad
			}
			status, out := call(t, srv, http.MethodPut, "transit/decrypt/k", root, req)
			require.Equal(t, tc.status, status)
			if tc.status == 200 {
				require.Equal(t, b64("sixteen byte dek"), out["data"].(map[string]any)["plaintext"])
			} else {
				require.Equal(t, []any{tc.msg}, out["errors"])
			}
		})
	}

	status, _ = call(t, srv, http.MethodPost, "transit/keys/k/rotate", root, nil)
	require.Equal(t, http.StatusOK, status)
	status, _ = call(t, srv, http.MethodPost, "transit/keys/k/config", root, map[string]any{"min_decryption_version": 2})
	require.Equal(t, http.StatusOK, status)
	status, out = call(t, srv, http.MethodPut, "transit/decrypt/k", root, map[string]any{"ciphertext": ct, "associated_data": b64("ws_1")})
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, []any{"ciphertext or signature version is disallowed by policy (too old)"}, out["errors"])
	status, out = call(t, srv, http.MethodGet, "transit/keys/k", root, nil)
	require.Equal(t, http.StatusOK, status)
	meta := out["data"].(map[string]any)
	require.EqualValues(t, 2, meta["latest_version"])
	require.EqualValues(t, 2, meta["min_decryption_version"])
	require.Len(t, meta["keys"], 1, "versions below min_decryption_version are not listed")

	status, _ = call(t, srv, http.MethodDelete, "transit/keys/k", root, nil)
	require.Equal(t, http.StatusBadRequest, status, "deletion_allowed is false by default")
	status, out = call(t, srv, http.MethodGet, "nomount/keys/k", root, nil)
	require.Equal(t, http.StatusNotFound, status)
	require.Contains(t, out["errors"].([]any)[0], "route entry not found")
}

func TestLoginsAndInjection(t *testing.T) {
	srv := transittest.New(t)
	srv.EnableAppRole("approle", "role", "secret")
	status, out := call(t, srv, http.MethodPost, "auth/approle/login", "", map[string]any{"role_id": "role", "secret_id": "nope"})
	require.Equal(t, http.StatusBadRequest, status)
	require.Equal(t, []any{"invalid role or secret ID"}, out["errors"])
	status, out = call(t, srv, http.MethodPost, "auth/approle/login", "", map[string]any{"role_id": "role", "secret_id": "secret"})
	require.Equal(t, http.StatusOK, status)
	auth := out["auth"].(map[string]any)
	tok := auth["client_token"].(string)
	require.EqualValues(t, 3600, auth["lease_duration"])

	status, _ = call(t, srv, http.MethodPost, "transit/encrypt/k", tok, map[string]any{"plaintext": b64("x")})
	require.Equal(t, http.StatusOK, status)
	srv.Forbid(transittest.OpEncrypt, true)
	status, _ = call(t, srv, http.MethodPost, "transit/encrypt/k", tok, map[string]any{"plaintext": b64("x")})
	require.Equal(t, http.StatusForbidden, status)
	srv.Forbid(transittest.OpEncrypt, false)
	srv.RevokeLoginTokens()
	status, _ = call(t, srv, http.MethodPost, "transit/encrypt/k", tok, map[string]any{"plaintext": b64("x")})
	require.Equal(t, http.StatusForbidden, status, "revoked")

	srv.ResetCalls()
	srv.FailNext(2, http.StatusServiceUnavailable)
	for _, want := range []int{503, 503, 200} {
		status, _ = call(t, srv, http.MethodPost, "transit/encrypt/k", srv.RootToken(), map[string]any{"plaintext": b64("x")})
		require.Equal(t, want, status)
	}
	require.Equal(t, 3, srv.Calls(transittest.OpEncrypt))
}
