package refresher

import (
	"context"
	"errors"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// revokeGitHubApp revokes a github_app connection's cached installation token: GitHub's
// DELETE <api base>/installation/token, authenticated by the token itself (not RFC 7009).
// The token is bound to the API base's origin when it is stored, so the call is checked
// against that binding like every revocation. There is no refresh token; the app's key is
// not sent. Outcomes as revokeAt's.
func (v *Revocations) revokeGitHubApp(ctx context.Context, cc store.ConnectionCredential, p oauthflow.Provider) revokeAttempt {
	if len(cc.Credential.AccessToken) == 0 {
		return revokeAttempt{outcome: store.Revoked} // none minted: nothing to revoke
	}
	hc, err := v.clientFor(p)
	if err != nil {
		return v.retryable(ctx, cc, err)
	}
	ctx, cancel := context.WithTimeout(ctx, revokeTimeout)
	defer cancel()
	bind := store.AccessTokenBinding(cc.Connection, store.BoundOrigins(cc.Credential.AccessOrigins))
	use := vault.Use{WorkspaceID: cc.WorkspaceID, ConnectionID: cc.ID, Actor: actor, Purpose: vault.UseRevoke}
	if err := vault.CheckOrigin(ctx, v.audit, use, p.GitHubAppRevocationURL(), bind.Origins); err != nil {
		var oe *vault.OriginError
		if errors.As(err, &oe) && oe.Unbound {
			return v.retryable(ctx, cc, err)
		}
		return revokeAttempt{outcome: store.NotRevocable, code: codeOriginChanged}
	}
	tok, err := v.creds.Open(ctx, bind, cc.Credential.AccessToken)
	if err != nil {
		return v.retryable(ctx, cc, err)
	}
	err = oauthflow.RevokeGitHubApp(ctx, hc, p, tok)
	tok.Wipe()
	if err != nil {
		return v.classify(ctx, cc, err)
	}
	return revokeAttempt{outcome: store.Revoked}
}
