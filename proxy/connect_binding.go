package proxy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// The connect flows' browser binding (oauthflow.BindingMAC) is made with the active key
// of the state key set (admin.Service.StateKeys) and stored with that key's id: kid ‖ ":" ‖ MAC. The
// callback picks the key by that kid only, so a flow started before a state-key rotation
// completes after it (the old key is verify-only for the flow lifetime), and a binding
// made with a retired or unknown key is refused.
const flowBindingSep = ':'

// BindBrowser returns the stored binding of session sessionID to the browser nonce.
func (fk *flowKeys) BindBrowser(ctx context.Context, sessionID, nonce string) ([]byte, error) {
	k, err := fk.state.Active(ctx)
	if err != nil {
		return nil, fmt.Errorf("proxy: browser binding key: %w", err)
	}
	mac := oauthflow.BindingMAC(k.Material(), sessionID, nonce)
	out := make([]byte, 0, len(k.KID())+1+len(mac))
	out = append(append(append(out, k.KID()...), flowBindingSep), mac...)
	return out, nil
}

// VerifyBrowser reports whether stored binds sessionID to nonce, under the key its kid
// names (constant-time comparison in oauthflow.VerifyBinding).
func (fk *flowKeys) VerifyBrowser(ctx context.Context, sessionID, nonce string, stored []byte) (bool, error) {
	if len(stored) == sha256.Size { // made before key ids: derived from the first API-key hashing key
		return fk.verifyLegacyBinding(ctx, sessionID, nonce, stored)
	}
	i := bytes.IndexByte(stored, flowBindingSep)
	if i <= 0 {
		return false, nil
	}
	k, err := fk.state.ByKid(ctx, string(stored[:i]))
	if err != nil {
		return false, fmt.Errorf("proxy: browser binding key: %w", err)
	}
	if k == nil { // retired or unknown: no other key is tried
		return false, nil
	}
	return oauthflow.VerifyBinding(k.Material(), sessionID, nonce, stored[i+1:]), nil
}

// legacyFlowKeyLabel derived the browser-binding key from the API-key hashing key before
// the state key set existed; flows started then (at most SessionLifetime before an
// upgrade) still complete.
const legacyFlowKeyLabel = "authpipe-proxy/v1 derive: connect-flow browser binding key"

func (fk *flowKeys) verifyLegacyBinding(ctx context.Context, sessionID, nonce string, stored []byte) (bool, error) {
	k, err := fk.hashKeys.ByKid(ctx, admin.FirstAPIKeyHashKeyID)
	if err != nil {
		return false, fmt.Errorf("proxy: browser binding key: %w", err)
	}
	if k == nil {
		return false, nil
	}
	return oauthflow.VerifyBinding(k.MAC([]byte(legacyFlowKeyLabel)), sessionID, nonce, stored), nil
}

// The connect page's form token (oauthflow.Flows.Preview): kid ‖ ":" ‖ base64url of
// HMAC-SHA256(state key, formTokenLabel ‖ session id), under the active state key and
// checked under the key its kid names (verify-only keys outlive a session).
const formTokenLabel = "authpipe-proxy connect form token v1"

// FormToken returns the connect page's form token for session sessionID.
func (fk *flowKeys) FormToken(ctx context.Context, sessionID string) (string, error) {
	k, err := fk.state.Active(ctx)
	if err != nil {
		return "", fmt.Errorf("proxy: form token key: %w", err)
	}
	return k.KID() + string(flowBindingSep) + base64.RawURLEncoding.EncodeToString(k.MAC([]byte(formTokenLabel), []byte(sessionID))), nil
}

// CheckFormToken reports whether token is session sessionID's form token.
func (fk *flowKeys) CheckFormToken(ctx context.Context, sessionID, token string) (bool, error) {
	kid, mac, ok := strings.Cut(token, string(flowBindingSep))
	if !ok || kid == "" || len(token) > 200 {
		return false, nil
	}
	got, err := base64.RawURLEncoding.DecodeString(mac)
	if err != nil {
		return false, nil
	}
	k, err := fk.state.ByKid(ctx, kid)
	if err != nil {
		return false, fmt.Errorf("proxy: form token key: %w", err)
	}
	if k == nil {
		return false, nil
	}
	return hmac.Equal(k.MAC([]byte(formTokenLabel), []byte(sessionID)), got), nil
}
