package proxy

import (
	"context"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// RaceEnabled reports a -race build (allocation counts are pinned only without it).
const RaceEnabled = raceEnabled

// StateKeyPublishDelay is how long a new state key waits before it MACs states.
const StateKeyPublishDelay = stateKeyPublishDelay

// storedStateKey opens the stored state key kid in whatever state it is (retired
// included), as a holder of that key could.
func storedStateKey(ctx context.Context, s *Server, kid string) (*admin.Key, error) {
	pk, err := s.store.ProxyKeyByID(ctx, kid)
	if err != nil {
		return nil, err
	}
	return s.admin.StateKeys().Open(ctx, pk)
}

// StateForTest returns a fresh state MAC'd with the stored state key kid (retired
// included): what a holder of that key could make. No session has it.
func StateForTest(ctx context.Context, s *Server, kid string) (string, error) {
	k, err := storedStateKey(ctx, s, kid)
	if err != nil {
		return "", err
	}
	state, _, err := oauthflow.NewState(kid, k.Material())
	return state, err
}

// SessionIDForTest returns a connect session id MAC'd with the stored state key kid
// (retired included): what a holder of that key could make. No session has it.
func SessionIDForTest(ctx context.Context, s *Server, kid string) (string, error) {
	k, err := storedStateKey(ctx, s, kid)
	if err != nil {
		return "", err
	}
	return makeSessionID(k)
}
