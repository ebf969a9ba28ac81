package vault

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/internal/problem"
)

// The bindings of every sealed value the proxy stores. Each part of a Binding goes into
// the associated data, so these names and the system workspace id are part of every
// stored ciphertext: changing one makes the values sealed under it unopenable.
// bindings_test.go pins the encoded associated data of each constructor.
//
// A credential (access token, refresh token, API key, client secret, PKCE verifier) is
// also bound to the origins it may be presented to (DESIGN.md "Where a credential may
// go"): they are fixed when it is sealed, stored beside the ciphertext, and read back to
// open it, so an edit of the stored origins makes it unopenable. CheckOrigin is the one
// check every credential-bearing call makes before it sends anything.

// Field names of sealed values.
const (
	fieldAccessToken   = "access_token"
	fieldRefreshToken  = "refresh_token"
	fieldAPIKey        = "api_key"
	fieldPKCEVerifier  = "pkce_verifier"
	fieldClientSecret  = "client_secret"
	fieldWebhookSecret = "webhook_secret"
	// fieldProviderWebhookSecret: a provider's signing secret for the webhooks it sends.
	fieldProviderWebhookSecret = "provider_webhook_secret"
	fieldProxyKey              = "key"
	// fieldGrantSecret: a machine connection's long-lived grant (its own OAuth client, or a
	// service-account key) from which its access tokens are minted.
	fieldGrantSecret = "grant_secret"
)

// originsPart introduces the origins in the associated data of a bound value, contextPart
// its context (Binding.Context).
const (
	originsPart = "origins"
	contextPart = "context"
)

// SystemWorkspaceID is the workspace that owns the proxy's own keys (state, API-key hash,
// webhook and checkpoint key sets), sealed under the client-secret keyring.
const SystemWorkspaceID = "_system"

// AccessTokenBinding is where a connection's sealed OAuth access token belongs, and the
// origins it may be presented to (the API base, the health check, the revocation endpoint).
func AccessTokenBinding(workspaceID, connectionID string, origins Origins) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: connectionID, Field: fieldAccessToken, Origins: origins}
}

// RefreshTokenBinding is where a connection's sealed OAuth refresh token belongs, and the
// origins it may be presented to (the token, refresh and revocation endpoints).
func RefreshTokenBinding(workspaceID, connectionID string, origins Origins) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: connectionID, Field: fieldRefreshToken, Origins: origins}
}

// APIKeyBinding is where a connection's sealed API key belongs, and the origins it may be
// presented to (the API base and the health check).
func APIKeyBinding(workspaceID, connectionID string, origins Origins) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: connectionID, Field: fieldAPIKey, Origins: origins}
}

// GrantSecretBinding is where a machine connection's sealed grant secret belongs (the end
// user's own client {"client_id","client_secret"} of an oauth2_client_credentials
// connection, the service-account key of a jwt_bearer one), and the origins it may be
// presented to (the token endpoint, where access tokens are minted with it).
func GrantSecretBinding(workspaceID, connectionID string, origins Origins) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: connectionID, Field: fieldGrantSecret, Origins: origins}
}

// PKCEVerifierBinding is where a connect session's sealed PKCE code verifier belongs, and
// the origin it may be presented to (the token endpoint).
func PKCEVerifierBinding(workspaceID, sessionID string, origins Origins) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: sessionID, Field: fieldPKCEVerifier, Origins: origins}
}

// ClientSecretBinding is where a provider configuration's sealed OAuth client secret
// belongs (providerID is the configuration's row id), and the origins it may be presented
// to (the token, refresh and revocation endpoints).
func ClientSecretBinding(workspaceID, providerID string, origins Origins) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: providerID, Field: fieldClientSecret, Origins: origins}
}

// WebhookSecretBinding is where a workspace's sealed webhook signing secret belongs; the
// workspace is its own owner.
func WebhookSecretBinding(workspaceID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: workspaceID, Field: fieldWebhookSecret}
}

// ProviderWebhookSecretBinding is where a provider's sealed webhook signing secret
// belongs: ownerID is the connection it verifies deliveries for, or the provider
// configuration's row id for an app-level secret (Slack's signing secret). It is bound to
// no origin: the proxy only computes MACs with it and never sends it anywhere.
func ProviderWebhookSecretBinding(workspaceID, ownerID string) Binding {
	return Binding{WorkspaceID: workspaceID, OwnerID: ownerID, Field: fieldProviderWebhookSecret}
}

// ProxyKeyBinding is where one of the proxy's own sealed keys belongs (kid is the key's id).
func ProxyKeyBinding(kid string) Binding {
	return Binding{WorkspaceID: SystemWorkspaceID, OwnerID: kid, Field: fieldProxyKey}
}

// Origins is the canonical, sorted set of origins (scheme://host:port, lower case, the
// default port explicit) a credential is bound to. nil means not bound (a value stored
// before origin binding, until the binding migration binds it); a bound credential's
// Origins is never nil, even when empty.
type Origins []string

// Bound reports whether o is a binding at all (see Origins).
func (o Origins) Bound() bool { return o != nil }

// Contains reports whether origin (canonical, OriginOf) is in o, or fits one of its
// origin patterns (MatchOrigin: a client secret of a templated provider).
func (o Origins) Contains(origin string) bool {
	if origin == "" {
		return false
	}
	if _, ok := slices.BinarySearch(o, origin); ok {
		return true
	}
	for _, p := range o {
		if strings.Contains(p, patternLabel) && MatchOrigin(p, origin) {
			return true
		}
	}
	return false
}

// NewOrigins is the binding of the given endpoint URLs: their origins, canonical, sorted,
// without duplicates. An empty URL, or one that names no usable origin (a template URL
// still holding a {placeholder}), adds nothing: a credential is never bound to it. The
// result is never nil.
func NewOrigins(urls ...string) Origins {
	out := Origins{}
	for _, u := range urls {
		if o := OriginOf(u); o != "" && !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	slices.Sort(out)
	return out
}

// OriginOf is the canonical origin of an absolute http(s) URL, or "" when raw has none.
func OriginOf(raw string) string {
	if raw == "" || strings.ContainsAny(raw, "{}") {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return ""
	}
	if s := strings.ToLower(u.Scheme); s != "https" && s != "http" {
		return ""
	}
	return outbound.Origin(u.Scheme, u.Host)
}

// ErrOriginNotBound: a credential-bearing call's destination is not an origin the
// credential is bound to (or the credential is not bound yet); nothing was sent. The HTTP
// layer answers 409 origin_changed.
var ErrOriginNotBound = problem.Sentinel(problem.ErrOriginChanged, "vault: destination origin is not bound to the credential")

// Purposes of credential-bearing calls, as CheckOrigin's audit event names them.
const (
	UseCodeExchange = "code_exchange"
	UseRefresh      = "refresh"
	UseMint         = "mint" // a machine grant's token request (client credentials, JWT bearer, GitHub App)
	UseRevoke       = "revoke"
	UseHealthCheck  = "health_check"
	UseForward      = "forward"
)

// Use names one credential-bearing call for CheckOrigin's audit event.
type Use struct {
	WorkspaceID  string
	ConnectionID string // "" when the call belongs to no connection yet (a code exchange)
	Actor        string
	Purpose      string // one of the Use… constants
}

// CheckOrigin is the one origin check of every credential-bearing call: the origin of
// dest must be in every binding the call carries (the credential's, and the client
// secret's when one is sent). A refusal is recorded as a credential.binding_refused event
// through rec (when not nil: the refusal stands even if recording fails) and returned as an
// error wrapping ErrOriginNotBound; the caller sends nothing. The event names the
// workspace, connection, destination origin and purpose, never a secret.
func CheckOrigin(ctx context.Context, rec audit.Appender, use Use, dest string, bound ...Origins) error {
	origin := OriginOf(dest)
	for _, b := range bound {
		if b.Bound() && b.Contains(origin) {
			continue
		}
		reason := "not_bound"
		if !b.Bound() {
			reason = "unbound"
		}
		if rec != nil {
			data, _ := json.Marshal(map[string]string{"origin": origin, "purpose": use.Purpose, "reason": reason})
			_ = rec.AppendEvents(context.WithoutCancel(ctx), audit.Event{WorkspaceID: use.WorkspaceID,
				Type: audit.BindingRefused, Actor: use.Actor, ConnectionID: use.ConnectionID, Outcome: audit.Failure,
				ErrorCode: "origin_changed", Data: string(data)})
		}
		return &OriginError{Origin: origin, Purpose: use.Purpose, Unbound: !b.Bound()}
	}
	return nil
}

// OriginError is CheckOrigin's refusal; errors.Is(err, ErrOriginNotBound) holds.
type OriginError struct {
	Origin  string // the destination's origin ("" when it had none)
	Purpose string
	Unbound bool // the credential is not bound yet (fail closed until the migration binds it)
}

func (e *OriginError) Error() string {
	if e.Unbound {
		return "vault: " + e.Purpose + " to " + e.Origin + " refused: the credential is not bound to origins yet"
	}
	return "vault: " + e.Purpose + " to " + e.Origin + " refused: not an origin the credential is bound to"
}

// Unwrap makes errors.Is(err, ErrOriginNotBound) hold (and carries its problem).
func (e *OriginError) Unwrap() error { return ErrOriginNotBound }
