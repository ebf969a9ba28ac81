package proxy

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// KeyRotated is the audit event of a rotation of one of the proxy's own keys, in the
// default workspace's chain. Its data holds the purpose and the new kid, never a key.
const KeyRotated = "key.rotated"

// RotatablePurposes lists the purposes RotateProxyKey accepts.
var RotatablePurposes = []string{PurposeAPIKeyHash, PurposeState}

func keyRotatedEvent(purpose, kid, actor string) audit.Event {
	return audit.Event{WorkspaceID: store.DefaultWorkspaceID, Type: KeyRotated, Actor: actor, Outcome: audit.Success,
		Data: dataJSON("purpose", purpose, "kid", kid)}
}

// keySet returns the key set of a purpose, or nil.
func (s *Server) keySet(purpose string) *KeySet {
	switch purpose {
	case PurposeAPIKeyHash:
		return s.hasher.keys
	case PurposeState:
		return s.stateKeys
	}
	return nil
}

// RotateProxyKey makes a new active key of purpose and moves the active one to
// verify-only, in one transaction with a key.rotated audit event. The old key retires by
// itself once nothing can still need it (state: after the flow lifetime; apikey-hash: when
// no unrevoked API key is hashed with it).
func (s *Server) RotateProxyKey(ctx context.Context, purpose, actor string) (ProxyKeyRotation, error) {
	ks := s.keySet(purpose)
	if ks == nil {
		return ProxyKeyRotation{}, ErrUnknownPurpose
	}
	r, err := ks.rotate(ctx, actor)
	if err != nil {
		return ProxyKeyRotation{}, err
	}
	if purpose == PurposeAPIKeyHash {
		s.auth.forget() // the cache is keyed by the active key's hash
	}
	return r, nil
}

// handleRotateProxyKey is POST /v1/proxy-keys/rotate {"purpose": …} (workspaces:write).
func (s *Server) handleRotateProxyKey(c *gin.Context) {
	var req struct {
		Purpose string `json:"purpose"`
	}
	if !bindJSON(c, &req) {
		return
	}
	if s.keySet(req.Purpose) == nil {
		fail(c, problem.ErrInvalidRequest.WithField("purpose", "one of apikey-hash, state"))
		return
	}
	r, err := s.RotateProxyKey(c.Request.Context(), req.Purpose, principal(c).KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}
