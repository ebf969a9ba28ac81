package proxy

import (
	"context"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// ForgeFlowBindingForTest returns kid ‖ ":" ‖ BindingMAC(key kid, sessionID, nonce) made with
// the stored key kid in whatever state it is (retired included): what an attacker holding
// an old key could write.
func ForgeFlowBindingForTest(ctx context.Context, s *Server, kid, sessionID, nonce string) ([]byte, error) {
	pk, err := s.store.ProxyKeyByID(ctx, kid)
	if err != nil {
		return nil, err
	}
	k, err := s.admin.StateKeys().Open(ctx, pk)
	if err != nil {
		return nil, err
	}
	return append([]byte(kid+":"), oauthflow.BindingMAC(k.Material(), sessionID, nonce)...), nil
}

// LegacyFlowBindingForTest returns the binding a flow started before key ids stored: a
// bare MAC under the key derived from the first API-key hashing key.
func LegacyFlowBindingForTest(ctx context.Context, s *Server, sessionID, nonce string) ([]byte, error) {
	k, err := s.admin.APIKeyHashKeys().ByKid(ctx, admin.FirstAPIKeyHashKeyID)
	if err != nil || k == nil {
		return nil, err
	}
	return oauthflow.BindingMAC(k.MAC([]byte(legacyFlowKeyLabel)), sessionID, nonce), nil
}
