package oauthflow

import (
	"context"
	"time"

	"github.com/authpipe/authpipe-proxy/vault"
)

// orphanRevokeTimeout bounds the best-effort revocation of a first token that could not
// be stored.
const orphanRevokeTimeout = 5 * time.Second

// revokeOrphan revokes, best effort, a connection's first token that was minted but could
// not be stored (sealing or storing failed): nobody holds it, so it would otherwise stay
// valid at the provider until it expires. A github_app token goes to GitHub's
// DELETE /installation/token (RevokeGitHubApp), any other mode's to its revocation_url
// (RFC 7009, Revoke) with the client that minted it; no revocation endpoint, nothing to
// do. The destination is checked against the token's origins (and, for RFC 7009, the
// presented client's) like every revocation (vault.CheckOrigin). Errors are dropped: the
// creation fails anyway, with the store's error.
//
// A commit whose outcome is unknown (the connection stored, the answer lost) revokes a
// stored token too: the connection then mints again once that token is refused.
func (m *Machines) revokeOrphan(ctx context.Context, in MachineConnect, filled Provider, client ClientCredentials,
	grant vault.Secret, tok Token) {
	if tok.AccessToken.IsZero() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), orphanRevokeTimeout)
	defer cancel()
	use := vault.Use{WorkspaceID: in.WorkspaceID, Actor: in.Actor, Purpose: vault.UseRevoke}
	hc, err := m.deps.ClientFor(filled)
	if err != nil {
		return
	}
	if filled.AuthMode == AuthModeGitHubApp {
		if vault.CheckOrigin(ctx, m.audit, use, filled.GitHubAppRevocationURL(), filled.AccessTokenOrigins()) == nil {
			_ = RevokeGitHubApp(ctx, hc, filled, tok.AccessToken)
		}
		return
	}
	if filled.RevocationURL == "" {
		return
	}
	bound := []vault.Origins{filled.AccessTokenOrigins()}
	if !grant.IsZero() {
		bound = append(bound, filled.GrantSecretOrigins())
	}
	if filled.MintUsesProviderClient(!grant.IsZero()) {
		bound = append(bound, client.SecretBindings()...)
	}
	presented, err := filled.ConnectionClient(client, grant)
	if err != nil {
		return
	}
	if vault.CheckOrigin(ctx, m.audit, use, filled.RevocationURL, bound...) == nil {
		_ = Revoke(ctx, hc, filled, presented, tok.AccessToken, HintAccessToken)
	}
}
