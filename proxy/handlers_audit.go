package proxy

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// auditAPI serves a workspace's audit chain: its events and its verification.
type auditAPI struct {
	svc     *admin.Service
	log     *slog.Logger
	metrics *metrics.Metrics // nil: not counted
}

func (a auditAPI) routes(api *gin.RouterGroup) {
	api.GET("/audit", require(admin.ScopeAuditRead), a.handleListAudit)
	api.GET("/audit/verify", require(admin.ScopeAuditRead), a.handleVerifyAudit)
}

type eventView struct {
	ID           string    `json:"id"`
	At           time.Time `json:"at"`
	Type         string    `json:"type"`
	Actor        string    `json:"actor"`
	ConnectionID string    `json:"connection_id,omitempty"`
	Outcome      string    `json:"outcome"`
	ErrorCode    string    `json:"error_code,omitempty"`
	// An aggregated read (token.read, proxy.request: audit.ReadData): how many reads the
	// event stands for and the window they fell in; a forwarded request's method and
	// upstream status.
	Count          int64      `json:"count,omitempty"`
	FirstAt        *time.Time `json:"first_at,omitempty"`
	LastAt         *time.Time `json:"last_at,omitempty"`
	Method         string     `json:"method,omitempty"`
	UpstreamStatus string     `json:"upstream_status,omitempty"`
	// A narrowed GitHub App token (token.narrowed): what it was limited to and granted.
	Narrowing *narrowingView `json:"narrowing,omitempty"`
	Hash      string         `json:"hash"`
	PrevHash  string         `json:"prev_hash"`
}

// narrowingView is token.narrowed's data: the repositories and permissions asked, what
// GitHub granted (permission:access and repository:name entries) and the token's expiry.
type narrowingView struct {
	Repositories []string `json:"repositories"`
	Permissions  []string `json:"permissions"`
	Granted      []string `json:"granted"`
	ExpiresAt    string   `json:"expires_at,omitempty"`
}

func newNarrowingView(data string) *narrowingView {
	var d map[string]string
	if json.Unmarshal([]byte(data), &d) != nil {
		return nil
	}
	list := func(s string) []string {
		if s == "" {
			return []string{}
		}
		return strings.Split(s, ",")
	}
	return &narrowingView{Repositories: list(d["repositories"]), Permissions: list(d["permissions"]),
		Granted: list(d["granted"]), ExpiresAt: d["expires_at"]}
}

func newEventView(e audit.Event) eventView {
	v := eventView{ID: e.ID, At: e.At.UTC(), Type: e.Type, Actor: e.Actor, ConnectionID: e.ConnectionID,
		Outcome: e.Outcome, ErrorCode: e.ErrorCode, Hash: e.Hash, PrevHash: e.PrevHash}
	if e.Type == audit.TokenRead || e.Type == audit.ProxyRequest {
		if d, ok := audit.ParseReadData(e.Data); ok {
			v.Count, v.FirstAt, v.LastAt = d.Count, admin.UTC(&d.FirstAt), admin.UTC(&d.LastAt)
			v.Method, v.UpstreamStatus = d.Method, d.Status
		} else {
			v.Count = 1 // written before reads were aggregated: one read each
		}
	}
	if e.Type == audit.TokenNarrowed {
		v.Narrowing = newNarrowingView(e.Data)
	}
	return v
}

func (a auditAPI) handleListAudit(c *gin.Context) {
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fail(c, problem.ErrInvalidRequest.WithField("limit", "a whole number from 1 to 1000"))
			return
		}
		limit = n
	}
	evs, err := a.svc.ListAudit(c.Request.Context(), principal(c).WorkspaceID, c.Query("after"), limit)
	if err != nil {
		fail(c, err)
		return
	}
	out := make([]eventView, 0, len(evs))
	for _, e := range evs {
		out = append(out, newEventView(e))
	}
	c.JSON(http.StatusOK, gin.H{"events": out})
}

// handleVerifyAudit verifies the caller's workspace chain: from the last verified signed
// checkpoint by default, from genesis (or the retained anchor) with ?full=true. A call
// while another verification of the workspace runs gets 429 with Retry-After.
func (a auditAPI) handleVerifyAudit(c *gin.Context) {
	full := false
	switch c.Query("full") {
	case "", "false":
	case "true":
		full = true
	default:
		fail(c, problem.ErrInvalidRequest.WithField("full", "true or false"))
		return
	}
	res, err := a.svc.VerifyAudit(c.Request.Context(), principal(c).WorkspaceID, full)
	if err != nil {
		fail(c, err)
		return
	}
	if !res.OK {
		a.log.Error("audit chain broken", "workspace", principal(c).WorkspaceID, "first_bad_event", res.FirstBadEvent)
		if a.metrics != nil {
			a.metrics.AuditChainBroken()
		}
		c.JSON(http.StatusOK, gin.H{"ok": false, "first_bad_event": res.FirstBadEvent, "reason": res.Reason, "full": full})
		return
	}
	c.JSON(http.StatusOK, gin.H{"ok": true, "events": res.Events, "head": res.Head, "head_seq": res.HeadSeq,
		"start_seq": res.StartSeq, "full": full})
}
