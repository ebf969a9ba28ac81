package providers

import (
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
)

// gitHubAppKeyPrefix checks a github_app provider's client secret (request field field):
// the app's private key, PEM RSA of at least 2048 bits (oauthflow.ValidateGitHubAppKey),
// else 400 invalid_request on the field, nothing stored. Its masked prefix is the PEM
// armour's "----", no part of the key.
func gitHubAppKeyPrefix(field string, secret vault.Secret) (string, error) {
	if err := oauthflow.ValidateGitHubAppKey(secret); err != nil {
		return "", problem.ErrInvalidRequest.WithField(field,
			"a github_app client secret is the app's private key: PEM (PKCS #1 or PKCS #8), RSA of 2048 bits or more")
	}
	return secret.Prefix(4), nil
}
