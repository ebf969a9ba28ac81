package providers

import (
	"encoding/json"
	"regexp"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// Config is a provider as configured in a workspace: a catalog entry's fields (from a
// template, overridden by the caller) plus the workspace's own settings. It is stored as
// JSON; the client secret is not part of it.
type Config struct {
	oauthflow.Provider
	Template     string   `json:"template,omitempty"`
	ClientID     string   `json:"client_id,omitempty"`
	Scopes       []string `json:"scopes"`
	CallbackURLs []string `json:"callback_urls"`
	ReturnURLs   []string `json:"return_urls"`
}

// Entry is a provider configured in a workspace, as stored.
type Entry struct {
	ID          string
	WorkspaceID string
	Key         string
	Config
	CreatedAt time.Time
	UpdatedAt time.Time
}

// View is a stored provider as the API shows it: the configuration and whether a client
// secret is set (with its first characters), never the secret. OriginsDifferFromTemplate
// says its endpoint origins differ from those of the catalog template it names or whose
// name it takes as its key.
type View struct {
	Key string `json:"key"`
	Config
	ClientSecretSet    bool   `json:"client_secret_set"`
	ClientSecretPrefix string `json:"client_secret_prefix,omitempty"`
	// ClientSecretNextSet: a next client secret is held during a secret rotation (only its
	// prefix is ever shown).
	ClientSecretNextSet    bool   `json:"client_secret_next_set,omitempty"`
	ClientSecretNextPrefix string `json:"client_secret_next_prefix,omitempty"`
	// ClientCertificate describes a tls_client_auth client secret's certificate (subject,
	// issuer, validity, fingerprint; no prefix is shown of a certificate bundle), and
	// ClientCertificateNext the next one during a rotation.
	ClientCertificate         *oauthflow.CertificateInfo `json:"client_certificate,omitempty"`
	ClientCertificateNext     *oauthflow.CertificateInfo `json:"client_certificate_next,omitempty"`
	OriginsDifferFromTemplate bool                       `json:"origins_differ_from_template"`
	CreatedAt                 time.Time                  `json:"created_at"`
	UpdatedAt                 time.Time                  `json:"updated_at"`
}

var keyPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidKey reports whether key is a well-formed provider key.
func ValidKey(key string) bool { return keyPattern.MatchString(key) }

// CheckKey refuses a malformed provider key (400 invalid_request on field key).
func CheckKey(key string) error {
	if !ValidKey(key) {
		return problem.ErrInvalidRequest.WithField("key", "1–63 lower-case letters, digits, dashes or underscores")
	}
	return nil
}

// workspaceFields are the request fields that are the workspace's, not the catalog
// entry's: Build never takes them from the overrides.
var workspaceFields = []string{"template", "client_id", "client_secret", "client_secret_next", "scopes", "callback_urls", "return_urls", "key", "name"}

// Request is a provider to create or replace, as PUT /v1/providers/{key} and the
// control-plane import give it (without the client secret): Template names a catalog
// entry, Overrides are the request's other provider fields (JSON values by name).
type Request struct {
	Key          string
	Template     string
	ClientID     string
	Scopes       []string
	CallbackURLs []string
	ReturnURLs   []string
	Overrides    map[string]json.RawMessage
}
