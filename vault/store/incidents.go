package store

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// Incident rotations (refresher/incident.go): an incident records what it selects and over
// which window, and one row per connection records its progress, so that a re-run after a
// crash finishes without rotating anything twice.

// Incident selectors.
const (
	SelectAPIKey    = "api_key_id"
	SelectProvider  = "provider"
	SelectEndUser   = "end_user_id"
	SelectWorkspace = "workspace"
)

// Incident is one incident rotation.
type Incident struct {
	ID          string `gorm:"primaryKey"`
	WorkspaceID string
	Selector    string // SelectAPIKey, SelectProvider, SelectEndUser or SelectWorkspace
	Value       string
	WindowFrom  time.Time
	WindowTo    time.Time
	Actor       string
	CreatedAt   time.Time
}

// TableName implements gorm's tabler.
func (Incident) TableName() string { return "incidents" }

// Incident connection states.
const (
	IncidentStarted = "started" // AccessToken holds the exposed token (sealed) until it is revoked
	IncidentDone    = "done"
)

// IncidentConnection is one connection's progress in an incident.
type IncidentConnection struct {
	IncidentID   string `gorm:"primaryKey"`
	ConnectionID string `gorm:"primaryKey"`
	State        string
	// Version is the connection's version when the rotation started: a later version means
	// its token has been replaced since (by this rotation before a crash, or a refresh).
	Version       int64
	AccessToken   []byte   // the exposed access token, sealed as it was stored
	AccessOrigins *Strings // its origin binding
	Provider      string
	Refreshed     bool
	Revoked       bool
	Outcome       string // '' or the revocation's or the refresh's error code
	UpdatedAt     time.Time
}

// TableName implements gorm's tabler.
func (IncidentConnection) TableName() string { return "incident_connections" }

// CreateIncident records an incident.
func (s *Store) CreateIncident(ctx context.Context, inc Incident) error {
	return s.classify(s.db.WithContext(ctx).Create(&inc).Error)
}

// IncidentOf returns a workspace's incident.
func (s *Store) IncidentOf(ctx context.Context, workspaceID, id string) (Incident, error) {
	var inc Incident
	err := s.db.WithContext(ctx).Where("workspace_id = ? AND id = ?", workspaceID, id).Take(&inc).Error
	return inc, s.classify(err)
}

// IncidentConnections returns an incident's progress rows.
func (s *Store) IncidentConnections(ctx context.Context, incidentID string) ([]IncidentConnection, error) {
	var out []IncidentConnection
	err := s.db.WithContext(ctx).Where("incident_id = ?", incidentID).Order("connection_id").Find(&out).Error
	return out, s.classify(err)
}

// StartIncidentConnection records that a connection's rotation has begun (with the exposed
// token, sealed).
func (s *Store) StartIncidentConnection(ctx context.Context, ic IncidentConnection) error {
	ic.State, ic.UpdatedAt = IncidentStarted, s.now().UTC()
	return s.classify(s.db.WithContext(ctx).Create(&ic).Error)
}

// FinishIncidentConnection records a connection's rotation as done — the exposed token's
// ciphertext is dropped — with its audit events, in one transaction.
func (s *Store) FinishIncidentConnection(ctx context.Context, ic IncidentConnection, evs ...audit.Event) error {
	ic.State, ic.UpdatedAt, ic.AccessToken, ic.AccessOrigins = IncidentDone, s.now().UTC(), nil, nil
	return s.classify(s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Save(&ic).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	}))
}

// IncidentCandidates returns the ids of the connections an incident selects, in id order:
// for SelectWorkspace every connection that holds an OAuth credential; otherwise every
// connection whose token was served (a successful token.read in the audit chain) in the
// window, by the key (SelectAPIKey), or of the provider or end user.
func (s *Store) IncidentCandidates(ctx context.Context, inc Incident) ([]string, error) {
	db := s.db.WithContext(ctx)
	var out []string
	if inc.Selector == SelectWorkspace {
		err := db.Model(&Connection{}).Where("workspace_id = ? AND auth_mode = ? AND status IN ?", inc.WorkspaceID, "oauth2",
			[]string{StatusActive, StatusNeedsReauth}).Order("id").Pluck("id", &out).Error
		return out, s.classify(err)
	}
	q := db.Model(&auditRow{}).Distinct("connection_id").
		Where("workspace_id = ? AND type = ? AND outcome = ? AND connection_id <> '' AND at >= ? AND at <= ?",
			inc.WorkspaceID, audit.TokenRead, audit.Success, inc.WindowFrom.UTC(), inc.WindowTo.UTC())
	switch inc.Selector {
	case SelectAPIKey:
		q = q.Where("actor = ?", inc.Value)
	case SelectProvider:
		q = q.Where("connection_id IN (?)", db.Model(&Connection{}).Select("id").
			Where("workspace_id = ? AND provider = ?", inc.WorkspaceID, inc.Value))
	case SelectEndUser:
		q = q.Where("connection_id IN (?)", db.Model(&Connection{}).Select("id").
			Where("workspace_id = ? AND end_user_id = ?", inc.WorkspaceID, inc.Value))
	}
	err := q.Order("connection_id").Pluck("connection_id", &out).Error
	return out, s.classify(err)
}
