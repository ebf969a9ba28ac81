// Package admin is the administration of a deployment, the one home the HTTP handlers
// and the command line both call: API keys (creation, revocation, the bootstrap key, the
// keyed hash they are stored under, and the lookup of a presented key to its principal),
// workspaces, the proxy's own key sets (state, apikey-hash, checkpoint) and the webhook
// secrets with their rotation, the orchestration of KEK rotation, webhook endpoints and
// the audit reads an operator runs (chain verification, checkpoints).
//
// It reaches the database through the small interfaces in store.go, satisfied by
// *store.Store, and never speaks HTTP.
package admin

import (
	"errors"
	"log/slog"
	"time"

	"github.com/authpipe/authpipe-proxy/vault"
)

// Config tunes the service.
type Config struct {
	// AuthCacheTTL bounds how long a revoked key may still be accepted by this replica
	// (default one second).
	AuthCacheTTL time.Duration
}

// Deps are the lower layers the service drives.
type Deps struct {
	Store   Store
	Creds   *vault.Keyring // purpose credentials: workspace DEKs, webhook secrets
	Secrets *vault.Keyring // purpose client_secrets: workspace DEKs, the proxy's own keys
	// Revoker revokes a workspace's grants at the providers before the workspace is
	// deleted (refresher.Revocations); without it DeleteWorkspace refuses.
	Revoker WorkspaceRevoker
}

// Option configures a Service.
type Option func(*Service)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Service) { s.log = l } }

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// Service is the administration of one deployment (one per process: it holds the key
// sets, the authentication cache and the state of a KEK rotation running here).
type Service struct {
	revoker WorkspaceRevoker
	store   Store
	creds   *vault.Keyring
	secrets *vault.Keyring
	log     *slog.Logger
	now     func() time.Time

	hasher      *KeyHasher
	state       *KeySet
	checkpoints *CheckpointKeys
	anomaly     *KeySet // anomaly_key.go
	auth        *authCache
	keks        *KEKRotation
}

// New builds the service. It touches nothing: the key sets load on first use.
func New(cfg Config, deps Deps, opts ...Option) (*Service, error) {
	if deps.Store == nil || deps.Creds == nil || deps.Secrets == nil {
		return nil, errors.New("admin: Store, Creds and Secrets are required")
	}
	if cfg.AuthCacheTTL <= 0 {
		cfg.AuthCacheTTL = time.Second
	}
	s := &Service{store: deps.Store, creds: deps.Creds, secrets: deps.Secrets, revoker: deps.Revoker, log: slog.New(slog.DiscardHandler),
		now: time.Now}
	for _, o := range opts {
		o(s)
	}
	s.hasher = &KeyHasher{keys: newKeySet(PurposeAPIKeyHash, s.store, s.secrets, s.now)}
	s.state = newKeySet(PurposeState, s.store, s.secrets, s.now)
	// Checkpoint keys keep the wall clock: the lifecycle jobs sign with them on schedule.
	s.checkpoints = newCheckpointKeys(newKeySet(PurposeCheckpoint, s.store, s.secrets, nil))
	s.anomaly = newKeySet(purposeAnomaly, s.store, s.secrets, s.now)
	s.auth = newAuthCache(cfg.AuthCacheTTL, 100_000, s.now)
	s.keks = newKEKRotation(s)
	return s, nil
}

// StateKeys is the state key set: the connect flows' state MACs, session ids and
// browser bindings.
func (s *Service) StateKeys() *KeySet { return s.state }

// APIKeyHashKeys is the apikey-hash key set (the legacy browser binding derives from its
// first key: FirstAPIKeyHashKeyID).
func (s *Service) APIKeyHashKeys() *KeySet { return s.hasher.keys }

// CheckpointKeys holds the keys that sign audit checkpoints.
func (s *Service) CheckpointKeys() *CheckpointKeys { return s.checkpoints }

// KEKs is the KEK rotation of this process.
func (s *Service) KEKs() *KEKRotation { return s.keks }
