package proxy

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/dpop"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// DPoP-bound API keys (RFC 9449): the middleware that asks internal/dpop to verify the
// proof of a request made with a bound key (the jtis of accepted proofs go to the
// database's dpop_jti, shared by every replica), and the cache of each key's binding.

// jktCache remembers each API key's DPoP binding (immutable once the key exists), so the
// hot path reads it from the database once per key and replica.
type jktCache struct {
	max int
	mu  sync.RWMutex
	m   map[string]string
}

func newJKTCache(max int) *jktCache { return &jktCache{max: max, m: map[string]string{}} }

func (c *jktCache) get(ctx context.Context, st *store.Store, keyID string) (string, error) {
	c.mu.RLock()
	jkt, ok := c.m[keyID]
	c.mu.RUnlock()
	if ok {
		return jkt, nil
	}
	jkt, err := st.APIKeyDPoPJKT(ctx, keyID)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[keyID] = jkt
	c.mu.Unlock()
	return jkt, nil
}

// checkDPoP runs after authenticate: a key bound to a DPoP key needs a valid proof.
// Keys without a binding pass untouched.
func (s *Server) checkDPoP(c *gin.Context) {
	p, ok := principalOf(c)
	if !ok {
		c.Next()
		return
	}
	jkt, err := s.edge.jkts.get(c.Request.Context(), s.store, p.KeyID)
	if err != nil {
		fail(c, err)
		return
	}
	if jkt == "" {
		c.Next()
		return
	}
	v := s.edge.dpop
	if n := v.Nonce(); n != "" {
		c.Header("DPoP-Nonce", n)
	}
	proofs := c.Request.Header.Values("DPoP")
	raw, _ := presentedKey(c.GetHeader("Authorization"))
	var verr error
	if len(proofs) != 1 {
		verr = dpop.ErrInvalidProof.WithDetail("exactly one DPoP header is required")
	} else {
		verr = v.Verify(c.Request.Context(), proofs[0], c.Request.Method, s.cfg.PublicURL+c.Request.URL.EscapedPath(),
			dpop.Binding{KeyID: p.KeyID, APIKey: raw, JKT: jkt})
	}
	if verr != nil {
		if errors.Is(verr, dpop.ErrInvalidProof) || errors.Is(verr, dpop.ErrUseNonce) {
			c.Header("WWW-Authenticate", dpop.Challenge(verr))
		}
		fail(c, verr)
		return
	}
	c.Next()
}

// presentedKey returns the key of an Authorization header with the Bearer or DPoP scheme.
func presentedKey(h string) (string, bool) {
	if k, ok := bearer(h); ok {
		return k, true
	}
	const prefix = "DPoP "
	if len(h) <= len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return strings.TrimSpace(h[len(prefix):]), true
}
