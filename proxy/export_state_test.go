package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"sync"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
)

// RaceEnabled reports a -race build (allocation counts are pinned only without it).
const RaceEnabled = raceEnabled

// StateKeyPublishDelay is how long a new state key waits before it MACs states.
const StateKeyPublishDelay = stateKeyPublishDelay

// StateForTest returns a fresh state MAC'd with the stored state key kid in whatever
// state it is (retired included): what a holder of that key could make. No session has it.
func StateForTest(ctx context.Context, s *Server, kid string) (string, error) {
	pk, err := s.store.ProxyKeyByID(ctx, kid)
	if err != nil {
		return "", err
	}
	sec, err := s.secret.Open(ctx, vault.Binding{WorkspaceID: systemWorkspace, OwnerID: kid, Field: "key"}, pk.Sealed)
	if err != nil {
		return "", err
	}
	state, _, err := oauthflow.NewState(kid, sec.Bytes())
	return state, err
}

// SessionIDForTest returns a connect session id MAC'd with the stored state key kid in
// whatever state it is (retired included): what a holder of that key could make. No
// session has it.
func SessionIDForTest(ctx context.Context, s *Server, kid string) (string, error) {
	pk, err := s.store.ProxyKeyByID(ctx, kid)
	if err != nil {
		return "", err
	}
	sec, err := s.secret.Open(ctx, vault.Binding{WorkspaceID: systemWorkspace, OwnerID: kid, Field: "key"}, pk.Sealed)
	if err != nil {
		return "", err
	}
	k := &setKey{kid: kid, material: sec.Bytes(), macs: &sync.Pool{New: func() any { return hmac.New(sha256.New, sec.Bytes()) }}}
	return makeSessionID(k)
}
