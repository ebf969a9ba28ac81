package refresher

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Incident rotation (API.md "Incident response", docs/incident-response.md): for every
// connection an incident selects — the connections a key (a provider's, an end user's)
// was served in a window, from the audit chain's aggregated token.read events, or every
// OAuth connection of the workspace — the exposed access token is replaced and revoked:
//
//  1. the progress row is written first, with the exposed token as it was sealed (the same
//     associated data still opens it) and the connection's version;
//  2. a forced refresh replaces the token (skipped when the version has moved on: this
//     rotation refreshed before a crash, or a refresh did meanwhile);
//  3. the exposed access token — never the refresh token, which the new grant may share —
//     is revoked at the provider (RFC 7009, the origin binding applies; revoking twice is
//     harmless);
//  4. the row is marked done, its ciphertext dropped, with a connection.rotated event in
//     the same transaction.
//
// The refresh comes first: a provider that revokes the whole grant when one of its access
// tokens is revoked (fosite does, by request id) would otherwise leave the connection
// needs_reauth; refreshed first, the exposed token is the old one and the new one stays.
// A re-run with the incident id finishes what a crash left: done rows are counted, not
// rotated again.

// IncidentStore is what an incident rotation needs of the store (vault/store satisfies it).
type IncidentStore interface {
	ConnectionWithCredential(ctx context.Context, workspaceID, id string) (store.ConnectionCredential, error)
	CreateIncident(ctx context.Context, inc store.Incident) error
	IncidentOf(ctx context.Context, workspaceID, id string) (store.Incident, error)
	IncidentConnections(ctx context.Context, incidentID string) ([]store.IncidentConnection, error)
	StartIncidentConnection(ctx context.Context, ic store.IncidentConnection) error
	FinishIncidentConnection(ctx context.Context, ic store.IncidentConnection, evs ...audit.Event) error
	IncidentCandidates(ctx context.Context, inc store.Incident) ([]string, error)
}

var _ IncidentStore = (*store.Store)(nil)

// IncidentRequest selects what an incident rotation rotates. Exactly one of APIKeyID,
// Provider, EndUserID and Workspace; or IncidentID alone, to resume an incident (its
// selection and window are the recorded ones).
type IncidentRequest struct {
	WorkspaceID string
	IncidentID  string
	APIKeyID    string
	Provider    string
	EndUserID   string
	Workspace   bool          // every OAuth connection of the workspace (the database was copied)
	Since       time.Duration // the window: reads since now-Since (default 24h)
	DryRun      bool          // count, change nothing
	Actor       string
	// Progress, when set, is called after each connection (done of total).
	Progress func(done, total int)
}

// IncidentResult is what a rotation did (on a resumed incident, the whole incident's).
type IncidentResult struct {
	IncidentID   string   `json:"incident_id,omitempty"`
	DryRun       bool     `json:"dry_run"`
	Connections  int      `json:"connections"`
	Revoked      int      `json:"revoked"`
	Refreshed    int      `json:"refreshed"`
	NotRevocable []string `json:"not_revocable"` // provider names whose tokens stay valid until they expire
	Failed       []string `json:"failed"`        // connection ids not finished (retry with the incident id)
}

// Errors of incident requests.
var (
	ErrIncidentSelector = problem.ErrInvalidRequest.WithField("api_key_id",
		"exactly one of api_key_id, provider, end_user_id or workspace:true (or incident_id alone)")
	ErrIncidentSince = problem.ErrInvalidRequest.WithField("since", "a duration from 1m to 2160h")
)

// maxIncidentWindow bounds Since (90 days).
const maxIncidentWindow = 2160 * time.Hour

// Incidents rotates the tokens an incident exposed. Safe for concurrent use.
type Incidents struct {
	store IncidentStore
	r     *Refresher
	v     *Revocations
	now   func() time.Time
	// hook, in tests, runs at a stage of a connection's rotation ("started", "refreshed");
	// an error stops the rotation there, as a crash would.
	hook func(stage, connectionID string) error
}

// NewIncidents builds the incident rotation over r (refresh) and v (revocation).
func NewIncidents(r *Refresher, v *Revocations, st IncidentStore) (*Incidents, error) {
	if r == nil || v == nil || st == nil {
		return nil, errors.New("refresher: incidents need a Refresher, Revocations and a store")
	}
	return &Incidents{store: st, r: r, v: v, now: r.now}, nil
}

// incident resolves the request to its incident: the recorded one, or a new one (recorded
// unless DryRun).
func (in *Incidents) incident(ctx context.Context, req IncidentRequest) (store.Incident, error) {
	sel, val, n := "", "", 0
	for _, c := range []struct {
		on       bool
		sel, val string
	}{{req.APIKeyID != "", store.SelectAPIKey, req.APIKeyID}, {req.Provider != "", store.SelectProvider, req.Provider},
		{req.EndUserID != "", store.SelectEndUser, req.EndUserID}, {req.Workspace, store.SelectWorkspace, ""}} {
		if c.on {
			sel, val, n = c.sel, c.val, n+1
		}
	}
	if req.IncidentID != "" {
		if n != 0 {
			return store.Incident{}, ErrIncidentSelector
		}
		return in.store.IncidentOf(ctx, req.WorkspaceID, req.IncidentID)
	}
	if n != 1 {
		return store.Incident{}, ErrIncidentSelector
	}
	since := req.Since
	if since == 0 {
		since = 24 * time.Hour
	}
	if since < time.Minute || since > maxIncidentWindow {
		return store.Incident{}, ErrIncidentSince
	}
	now := in.now().UTC()
	inc := store.Incident{ID: ids.New(ids.Incident), WorkspaceID: req.WorkspaceID, Selector: sel, Value: val,
		WindowFrom: now.Add(-since), WindowTo: now, Actor: req.Actor, CreatedAt: now}
	if req.DryRun {
		inc.ID = ""
		return inc, nil
	}
	return inc, in.store.CreateIncident(ctx, inc)
}

// Rotate runs (or resumes) an incident rotation. A connection that fails (provider down,
// KMS, database) is left unfinished and named in Failed; the others go on. An error is
// returned only when the incident cannot be resolved or listed, or a test hook stops it.
func (in *Incidents) Rotate(ctx context.Context, req IncidentRequest) (IncidentResult, error) {
	inc, err := in.incident(ctx, req)
	if err != nil {
		return IncidentResult{}, err
	}
	cands, err := in.store.IncidentCandidates(ctx, inc)
	if err != nil {
		return IncidentResult{}, err
	}
	res := IncidentResult{IncidentID: inc.ID, DryRun: req.DryRun, Connections: len(cands), NotRevocable: []string{},
		Failed: []string{}}
	progress := map[string]store.IncidentConnection{}
	if inc.ID != "" {
		rows, err := in.store.IncidentConnections(ctx, inc.ID)
		if err != nil {
			return IncidentResult{}, err
		}
		for _, r := range rows {
			progress[r.ConnectionID] = r
		}
	}
	for i, id := range cands {
		ic, seen := progress[id]
		if !seen || ic.State != store.IncidentDone {
			if req.DryRun {
				ic, err = in.dryRun(ctx, inc.WorkspaceID, id)
			} else {
				ic, err = in.rotateOne(ctx, inc, id, ic, seen, req.Actor)
			}
			if errors.Is(err, errHook) {
				return res, err
			}
			if err != nil {
				in.r.log.WarnContext(ctx, "incident: connection not rotated", "incident", inc.ID, "connection", id, "err", err)
				res.Failed = append(res.Failed, id)
				continue
			}
		}
		res.add(ic)
		if req.Progress != nil {
			req.Progress(i+1, len(cands))
		}
	}
	return res, nil
}

func (res *IncidentResult) add(ic store.IncidentConnection) {
	if ic.Refreshed {
		res.Refreshed++
	}
	if ic.Revoked {
		res.Revoked++
	} else if ic.Provider != "" && !slices.Contains(res.NotRevocable, ic.Provider) {
		res.NotRevocable = append(res.NotRevocable, ic.Provider)
	}
}

// errHook is how a test hook's stop is told from a connection's failure.
var errHook = errors.New("refresher: incident stopped by a test hook")

func (in *Incidents) stage(name, id string) error {
	if in.hook == nil {
		return nil
	}
	if err := in.hook(name, id); err != nil {
		return errors.Join(errHook, err)
	}
	return nil
}

// dryRun says what rotating the connection would do, asking no provider: revocable when
// its provider has a revocation endpoint, refreshed when it holds a refresh token or its
// tokens are minted (a machine grant mints a new one).
func (in *Incidents) dryRun(ctx context.Context, workspaceID, id string) (store.IncidentConnection, error) {
	cc, err := in.store.ConnectionWithCredential(ctx, workspaceID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.IncidentConnection{}, nil // gone since: nothing to rotate
	}
	if err != nil {
		return store.IncidentConnection{}, err
	}
	ic := store.IncidentConnection{ConnectionID: id, Provider: cc.Provider}
	mode := oauthflow.AuthMode(cc.AuthMode)
	if cc.Credential == nil || !mode.HasAccessToken() {
		return ic, nil
	}
	ic.Refreshed = len(cc.Credential.RefreshToken) > 0 || mode.Minted()
	p, _, err := in.v.providers.Provider(ctx, workspaceID, cc.Provider)
	ic.Revoked = err == nil && p.RevocationURL != ""
	return ic, nil
}

// rotateOne rotates one connection as the file comment says; ic is its progress row when
// seen (a crash left it started).
func (in *Incidents) rotateOne(ctx context.Context, inc store.Incident, id string, ic store.IncidentConnection, seen bool,
	actor string) (store.IncidentConnection, error) {
	cc, err := in.store.ConnectionWithCredential(ctx, inc.WorkspaceID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Deleted since (erased, workspace gone): nothing left to rotate.
		return in.finish(ctx, inc, store.IncidentConnection{IncidentID: inc.ID, ConnectionID: id, Outcome: "not_found"}, actor)
	case err != nil:
		return ic, err
	}
	if !seen {
		ic = store.IncidentConnection{IncidentID: inc.ID, ConnectionID: id, Version: cc.Version, Provider: cc.Provider}
		if cc.Credential == nil || !oauthflow.AuthMode(cc.AuthMode).HasAccessToken() || len(cc.Credential.AccessToken) == 0 {
			// An API key or a password cannot be revoked or refreshed (nor can a disconnected
			// connection's deleted token): reported not revocable. A minted token is
			// replaced by a new mint and revoked like an OAuth one.
			ic.Outcome = codeRevocationUnsupported
			return in.finish(ctx, inc, ic, actor)
		}
		ic.AccessToken, ic.AccessOrigins = cc.Credential.AccessToken, cc.Credential.AccessOrigins
		if err := in.store.StartIncidentConnection(ctx, ic); err != nil {
			return ic, err
		}
	}
	if err := in.stage("started", id); err != nil {
		return ic, err
	}
	if cc.Version == ic.Version {
		if _, err := in.r.ForceRefresh(unthrottled(ctx), inc.WorkspaceID, id); err != nil {
			// Not replaced (no refresh token, needs_reauth, provider down): the exposed token
			// is revoked all the same; the connection says what it needs.
			ic.Outcome = problem.From(err).Code
		} else {
			ic.Refreshed = true
		}
	} else {
		ic.Refreshed = true // replaced before a crash (or by a refresh since)
	}
	if err := in.stage("refreshed", id); err != nil {
		return ic, err
	}
	old := store.ConnectionCredential{Connection: cc.Connection, Credential: &store.Credential{ConnectionID: id,
		WorkspaceID: inc.WorkspaceID, AccessToken: ic.AccessToken, AccessOrigins: ic.AccessOrigins}}
	if cc.Credential != nil { // a minted connection's own client revokes what it minted
		old.Credential.GrantSecret, old.Credential.GrantOrigins = cc.Credential.GrantSecret, cc.Credential.GrantOrigins
	}
	att := in.v.revokeAt(ctx, old, true)
	switch att.outcome {
	case store.Revoked:
		ic.Revoked = true
	case store.RetryLater:
		return ic, errors.New("incident: revocation to be retried: " + att.code)
	default:
		if ic.Outcome == "" {
			ic.Outcome = att.code
		}
	}
	return in.finish(ctx, inc, ic, actor)
}

// finish marks the connection done with its connection.rotated event.
func (in *Incidents) finish(ctx context.Context, inc store.Incident, ic store.IncidentConnection, actor string) (store.IncidentConnection, error) {
	if ic.Outcome == "not_found" {
		ic.Provider = ""
	}
	ev := audit.Event{WorkspaceID: inc.WorkspaceID, Type: audit.ConnectionRotated, Actor: actor, ConnectionID: ic.ConnectionID,
		Outcome: audit.Success, ErrorCode: ic.Outcome,
		Data: eventData("incident", inc.ID, "provider", ic.Provider, "revoked", boolText(ic.Revoked), "refreshed", boolText(ic.Refreshed))}
	if !ic.Revoked || !ic.Refreshed {
		ev.Outcome = audit.Failure
	}
	return ic, in.store.FinishIncidentConnection(ctx, ic, ev)
}

func boolText(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
