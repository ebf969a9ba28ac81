package proxy

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/controlplane"
	"github.com/authpipe/authpipe-proxy/inbound"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/providers"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// connectionView is a connection's metadata as the API shows it (admin.ViewOf).
type connectionView = admin.ConnectionView

func viewOf(c store.Connection) connectionView { return admin.ViewOf(c) }

func validEndUser(id string) bool { return admin.ValidEndUserID(id) }

func (s *Server) handleCreateConnection(c *gin.Context) {
	var req struct {
		Provider  string       `json:"provider"`
		EndUserID string       `json:"end_user_id"`
		APIKey    vault.Secret `json:"api_key"`
		// Basic is a basic provider's {"username","password"} (oauthflow.BasicCredential).
		Basic *oauthflow.BasicCredential `json:"basic"`
		// WebhookSecret is the provider's webhook signing secret (package inbound), optional.
		WebhookSecret vault.Secret `json:"webhook_secret"`
		// OAuth2 and ExternalID import an existing grant (oauthflow.Importer).
		OAuth2     *oauthflow.ImportedGrant `json:"oauth2"`
		ExternalID string                   `json:"external_id"`
		// ConnectionConfig fills the provider's URL placeholders, Metadata is kept with the
		// connection (oauthflow.NewTypedConnection checks both).
		ConnectionConfig map[string]string `json:"connection_config"`
		Metadata         map[string]string `json:"metadata"`
		// Machine connections (oauthflow.Machines): the end user's own client, a
		// service-account key, a GitHub App installation; none of them for the provider's client.
		ClientCredentials *oauthflow.GrantClient `json:"client_credentials"`
		ServiceAccount    oauthflow.KeyJSON      `json:"service_account"`
		InstallationID    string                 `json:"installation_id"`
	}
	if !bindJSON(c, &req) {
		return
	}
	if req.OAuth2 != nil || req.ExternalID != "" {
		if !req.APIKey.IsZero() || req.Basic != nil || req.OAuth2 == nil || !req.WebhookSecret.IsZero() || req.ConnectionConfig != nil || req.Metadata != nil {
			// webhook_secret on an import: set it afterwards with PUT .../webhook-secret.
			fail(c, problem.ErrInvalidRequest.WithDetail("an import takes oauth2 (and optionally external_id), no api_key, basic, webhook_secret, connection_config or metadata"))
			return
		}
		importGrant(c, s.importer, s.events, oauthflow.Import{Provider: req.Provider, EndUserID: req.EndUserID,
			ExternalID: req.ExternalID, Grant: *req.OAuth2})
		return
	}
	switch {
	case !providers.ValidKey(req.Provider):
		fail(c, problem.ErrInvalidRequest.WithField("provider", "required"))
		return
	case !validEndUser(req.EndUserID):
		fail(c, problem.ErrInvalidRequest.WithField("end_user_id", "1–256 printable characters"))
		return
	case !req.WebhookSecret.IsZero() && req.WebhookSecret.Len() > inbound.MaxSecretLen:
		fail(c, inbound.CheckSecret("webhook_secret", req.WebhookSecret))
		return
	}
	ctx := c.Request.Context()
	p := principal(c)
	prov, _, err := s.providers.Resolve(ctx, p.WorkspaceID, req.Provider)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		fail(c, err)
		return
	}
	machine := req.ClientCredentials != nil || !req.ServiceAccount.IsZero() || req.InstallationID != ""
	if req.APIKey.IsZero() && req.Basic == nil && (machine || prov.AuthMode.Minted()) {
		createMachine(c, s.machines, s.events, oauthflow.MachineConnect{WorkspaceID: p.WorkspaceID, Provider: req.Provider,
			EndUserID: req.EndUserID, Actor: p.KeyID, ClientCredentials: req.ClientCredentials, ServiceAccount: req.ServiceAccount.Secret,
			ConnectionConfig: req.ConnectionConfig, Metadata: req.Metadata}, req.InstallationID, !req.WebhookSecret.IsZero())
		return
	}
	if machine || req.Basic == nil && (req.APIKey.IsZero() || req.APIKey.Len() > oauthflow.MaxAPIKeyLen) {
		fail(c, problem.ErrInvalidRequest.WithField("api_key", "required, at most 8 KiB (and no client_credentials, service_account or installation_id)"))
		return
	}
	// The same connection as the hosted connect page's form makes (oauthflow): its
	// connection_config (400 invalid_connection_config) and metadata checked, the key (or
	// basic's username and password) bound to the filled API-key origins.
	typed := oauthflow.TypedCredential{APIKey: req.APIKey}
	if req.Basic != nil {
		typed.Basic = *req.Basic
	}
	nc, err := oauthflow.NewTypedConnection(ctx, s.creds, prov.Provider, p.WorkspaceID, req.Provider, req.EndUserID, p.KeyID,
		typed, req.ConnectionConfig, req.Metadata, s.now())
	if err != nil {
		fail(c, err)
		return
	}
	conn := nc.Connection
	if req.WebhookSecret.IsZero() {
		err = s.store.CreateConnection(ctx, conn, nc.Credential, nc.Event)
	} else { // sealed first: a KMS failure writes nothing; then one transaction
		var sec store.WebhookSigningSecret
		if sec, err = s.inbound.svc.SealConnectionSecret(ctx, p.WorkspaceID, conn.ID, req.WebhookSecret); err == nil {
			conn.WebhookSecretPrefix = sec.Prefix
			err = s.store.CreateConnectionWithWebhookSecret(ctx, conn, nc.Credential, sec, nc.Event)
		}
	}
	if err != nil {
		fail(c, err)
		return
	}
	emitConnection(ctx, s.events, controlplane.EventConnectionCreated, conn, "")
	c.JSON(http.StatusCreated, viewOf(conn))
}

func (s *Server) handleListConnections(c *gin.Context) {
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 200 {
			fail(c, problem.ErrInvalidRequest.WithField("limit", "a whole number from 1 to 200"))
			return
		}
		limit = n
	}
	f := store.ConnectionFilter{EndUserID: c.Query("end_user_id"), Provider: c.Query("provider"),
		Status: c.Query("status"), After: c.Query("cursor"), Limit: limit + 1}
	switch f.Status {
	case "", store.StatusActive, store.StatusNeedsReauth, store.StatusDisconnected, store.StatusError:
	default:
		fail(c, problem.ErrInvalidRequest.WithField("status", "active, needs_reauth, disconnected or error"))
		return
	}
	if f.After != "" && !ids.HasPrefix(f.After, ids.Connection) {
		fail(c, problem.ErrInvalidRequest.WithField("cursor", "not a cursor of this list"))
		return
	}
	list, err := s.store.ListConnections(c.Request.Context(), principal(c).WorkspaceID, f)
	if err != nil {
		fail(c, err)
		return
	}
	next := ""
	if len(list) > limit {
		list = list[:limit]
		next = list[limit-1].ID
	}
	out := make([]connectionView, 0, len(list))
	for _, conn := range list {
		out = append(out, viewOf(conn))
	}
	c.JSON(http.StatusOK, gin.H{"connections": out, "next_cursor": next})
}

func (s *Server) handleGetConnection(c *gin.Context) {
	conn, err := s.store.Connection(c.Request.Context(), principal(c).WorkspaceID, c.Param("id"))
	if err != nil {
		fail(c, err)
		return
	}
	c.JSON(http.StatusOK, viewOf(conn))
}

// importGrant is POST /v1/connections with "oauth2": an existing grant imported
// (oauthflow.Importer: validated whole, sealed, bound, audited connection.imported).
func importGrant(c *gin.Context, im *oauthflow.Importer, events EventSink, in oauthflow.Import) {
	ctx := c.Request.Context()
	p := principal(c)
	conn, err := im.Import(ctx, p.WorkspaceID, p.KeyID, in)
	if err != nil {
		fail(c, err)
		return
	}
	emitConnection(ctx, events, controlplane.EventConnectionCreated, conn, "")
	c.JSON(http.StatusCreated, viewOf(conn))
}

// createMachine is POST /v1/connections for a machine mode (oauthflow.Machines: one mint
// proves the credential, then connection, sealed grant secret, first token and audit event
// in one transaction). installationID is a github_app connection's connection_config
// installation_id.
func createMachine(c *gin.Context, m *oauthflow.Machines, events EventSink, in oauthflow.MachineConnect, installationID string, webhookSecret bool) {
	defer in.ServiceAccount.Wipe()
	if webhookSecret {
		fail(c, problem.ErrInvalidRequest.WithField("webhook_secret", "set it after creating a machine connection (PUT .../webhook-secret)"))
		return
	}
	if installationID != "" {
		if v, ok := in.ConnectionConfig["installation_id"]; ok && v != installationID {
			fail(c, problem.ErrInvalidRequest.WithField("installation_id", "differs from connection_config.installation_id"))
			return
		}
		cfg := make(map[string]string, len(in.ConnectionConfig)+1)
		for k, v := range in.ConnectionConfig {
			cfg[k] = v
		}
		cfg["installation_id"] = installationID
		in.ConnectionConfig = cfg
	}
	ctx := c.Request.Context()
	conn, err := m.Create(ctx, in)
	if err != nil {
		fail(c, err)
		return
	}
	emitConnection(ctx, events, controlplane.EventConnectionCreated, conn, "")
	c.JSON(http.StatusCreated, viewOf(conn))
}
