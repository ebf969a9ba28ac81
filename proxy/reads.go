package proxy

import (
	"crypto/sha256"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// Read accounting (internal/audit/reads.go): every token read and every forwarded request
// is counted in the audit chain, served or refused, per (workspace, key, connection,
// outcome) and window. A served read is counted by its handler before the credential
// leaves (fail closed); a refused one by accountRefused, after the chain has answered.

// refusedRead reports whether a read that failed with p is accounted: refusals of the
// caller or of the connection — 401 (a key that resolved to a workspace but failed a
// binding: workspace header, mTLS, DPoP), 403, 404, 409, 410, 423 — and a credential that
// could not be served (no refresh to be had, KMS down). Not accounted: 400 (a malformed
// request), 429 (rate limits meter before anything is read) and audit_unavailable itself.
func refusedRead(p *problem.Problem) bool {
	switch p.Status {
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusConflict, http.StatusGone,
		http.StatusLocked:
		return true
	}
	return p.Code == problem.ErrRefreshUnavailable.Code || p.Code == problem.ErrKMSUnavailable.Code
}

// accountRefused runs first in the chain of a read route (typ audit.TokenRead, or
// forwardEventType with param "connection_id"): after the chain, a refused read is counted
// with outcome failure and its problem code. A 401 of a key that resolved to no workspace
// (unknown, malformed, revoked) is in no chain: a chain belongs to a workspace, and an
// unauthenticated caller must not grow one; those are counted by the per-IP failure limit,
// the metrics and the access log. Best effort: the request has already failed closed.
func accountRefused(events *audit.Batcher, typ, param string, now func() time.Time, log *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if len(c.Errors) == 0 {
			return
		}
		p := problem.From(c.Errors.Last().Err)
		r := requestOf(c)
		if !refusedRead(p) || r.principal.WorkspaceID == "" {
			return
		}
		k := audit.ReadKey{WorkspaceID: r.principal.WorkspaceID, Actor: r.principal.KeyID, Type: typ,
			ConnectionID: accountedID(c.Param(param)), Outcome: audit.Failure, ErrorCode: p.Code}
		if typ == forwardEventType {
			k.Method = c.Request.Method
		}
		if err := events.Count(c.Request.Context(), k, now()); err != nil {
			log.WarnContext(c.Request.Context(), "audit: refused read not recorded", "type", typ, "code", p.Code, "err", err)
		}
	}
}

// readClient sets a served read's client for the anomaly detection's client baseline
// (internal/audit/anomaly_clients.go): the address the edge resolved and, over mTLS, the
// SHA-256 of the verified client certificate. Copies only: nothing allocates.
func readClient(c *gin.Context, k *audit.ReadKey) {
	k.Client = clientIP(c)
	if t := c.Request.TLS; t != nil && len(t.VerifiedChains) > 0 && len(t.VerifiedChains[0]) > 0 {
		k.Cert = sha256.Sum256(t.VerifiedChains[0][0].Raw)
	}
}

// accountedID is the connection id a refused read names, when it looks like one (an id
// that names nothing is still the caller's text: it is not copied into the chain).
func accountedID(id string) string {
	if ids.HasPrefix(id, ids.Connection) && safeToken(id, 80) {
		return id
	}
	return ""
}
