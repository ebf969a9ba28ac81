package providers

// A tls_client_auth provider's client secret is its client certificate chain and private
// key, PEM (RFC 8705 section 2.1; oauthflow.ParseClientCertificate). It is checked before
// it is sealed, and what a view may show of it is the certificate's public description
// (subject, issuer, validity, fingerprint), kept in the secret row's prefix column so that
// it follows the secret through a rotation (promote, drop) without opening anything.

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// certPrefix starts a secret row's prefix that describes a certificate bundle.
const certPrefix = "x509:"

// secretPrefix checks secret (request field field) against cfg's client authentication
// and returns what the secret row keeps of it for views: the masked prefix, or for a
// tls_client_auth provider the certificate's description. A certificate bundle that does
// not parse, or that is not valid now, is 400 invalid_request on field (its reason, never
// its content).
func (s *Service) secretPrefix(cfg Config, field string, secret vault.Secret) (string, error) {
	if cfg.AuthMode == oauthflow.AuthModeGitHubApp {
		return gitHubAppKeyPrefix(field, secret) // githubapp.go
	}
	if cfg.TokenAuthMethod != oauthflow.TLSClientAuth {
		return secret.Prefix(4), nil
	}
	c, err := oauthflow.ParseClientCertificate(secret)
	if err == nil {
		err = c.ValidAt(s.now())
	}
	if err != nil {
		return "", problem.ErrInvalidRequest.WithField(field,
			"a tls_client_auth client secret is a PEM certificate chain (leaf first) and its unencrypted private key: "+
				strings.TrimPrefix(err.Error(), oauthflow.ErrClientCertificate.Error()+": "))
	}
	b, _ := json.Marshal(c.Info())
	return certPrefix + string(b), nil
}

// certificateOf is the certificate a secret row's prefix describes (nil: not a certificate).
func certificateOf(prefix string) *oauthflow.CertificateInfo {
	raw, ok := strings.CutPrefix(prefix, certPrefix)
	if !ok {
		return nil
	}
	var info oauthflow.CertificateInfo
	if json.Unmarshal([]byte(raw), &info) != nil {
		return nil
	}
	return &info
}

// checkKeptSecret refuses an update that keeps a stored client secret (or next secret)
// which does not fit cfg's client authentication: a certificate bundle for a provider
// that no longer uses tls_client_auth (it would be sent as a secret), or a plain secret
// for one that now does. 400 client_secret_required: give the secret with the change.
func (s *Service) checkKeptSecret(ctx context.Context, providerID string, cfg Config, secretGiven, nextGiven bool) error {
	if secretGiven || providerID == "" { // a new secret ends a rotation: nothing is kept
		return nil
	}
	sec, err := s.store.ProviderSecret(ctx, providerID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	wantCert := cfg.TokenAuthMethod == oauthflow.TLSClientAuth
	fits := func(prefix string) bool { return (certificateOf(prefix) != nil) == wantCert }
	if len(sec.Sealed) > 0 && !fits(sec.Prefix) {
		return problem.ErrClientSecretRequired.WithField("client_secret",
			"the stored client secret does not fit the token_auth_method: give a new one with the change")
	}
	if !nextGiven && len(sec.NextSealed) > 0 && !fits(sec.NextPrefix) {
		return problem.ErrClientSecretRequired.WithField("client_secret_next",
			"the stored next client secret does not fit the token_auth_method: give a new one with the change")
	}
	return nil
}
