package refresher

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Minting (machine grants: oauth2_client_credentials, jwt_bearer, github_app) goes through
// exactly what a refresh goes through: the single-flight, the lease claimed in the
// connection's row lock, the fenced commit that releases it, the failure path. Only the
// provider call differs: oauthflow.Mint with the connection's grant secret (its own client
// or service-account key, opened here) or the provider's client, instead of the
// refresh_token grant. A minted token is due like a refreshed one (next_refresh_at: its
// expiry minus jitter), so the sweep mints the next one inside the lead window and the
// token endpoint rarely waits for a provider; a refusal of the credential
// (invalid_client, unauthorized_client, invalid_grant) is seen by the sweep and makes the
// connection needs_reauth, as a revoked refresh token does.

// performMint mints for one leased minted-mode connection (performLeased's branch).
func (r *Refresher) performMint(ctx context.Context, cl store.Claim, holder string) (res result, retry bool) {
	c := cl.Row.Connection
	cred := cl.Row.Credential
	res.row = cl.Row
	if cred == nil {
		if err := r.store.ReleaseRefresh(context.WithoutCancel(ctx), c.ID, holder, nil, true, r.now()); err != nil {
			r.log.LogAttrs(ctx, slog.LevelWarn, "release lease", slog.String("connection", c.ID), slog.Any("err", err))
		}
		res.err = ErrUnavailable
		return res, false
	}
	grant, err := openGrant(ctx, r.creds, cl.Row)
	if err != nil {
		res, retry = r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: "kms_unavailable", cause: err})
		if res.err != nil {
			res.err = err
		}
		return res, retry
	}
	defer grant.Wipe()
	prov, client, err := r.providers.Provider(ctx, c.WorkspaceID, c.Provider)
	var bound []vault.Origins
	if err == nil {
		prov, err = oauthflow.ConnectionProvider(prov, c) // the connection's filled URLs
	}
	if err != nil {
		r.log.LogAttrs(ctx, slog.LevelWarn, "mint: provider not resolvable", slog.String("connection", c.ID), slog.Any("err", err))
		return r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: "provider_not_configured", cause: err})
	}
	if client, bound, err = presented(prov, client, grant, cl.Row); err != nil {
		return r.failed(ctx, cl, holder, ClassifyMint(err, r.now()))
	}
	use := vault.Use{WorkspaceID: c.WorkspaceID, ConnectionID: c.ID, Actor: actor, Purpose: vault.UseMint}
	if err := vault.CheckOrigin(ctx, r.audit, use, prov.TokenURL, bound...); err != nil {
		res, retry = r.failed(ctx, cl, holder, &Failure{Class: ClassTransient, Code: "origin_changed", cause: err})
		if res.err != nil {
			res.err = err
		}
		return res, retry
	}
	return r.callProvider(ctx, cl, holder, prov, prov.TokenURL, ClassifyMint,
		func(hc *http.Client, start time.Time) (oauthflow.Token, error) {
			return oauthflow.Mint(ctx, hc, prov, client, grant, start)
		})
}

// openGrant opens a minted connection's grant secret (its own client or service-account
// key) with its binding; zero when it has none. The caller wipes it.
func openGrant(ctx context.Context, o Opener, cc store.ConnectionCredential) (vault.Secret, error) {
	if cc.Credential == nil || len(cc.Credential.GrantSecret) == 0 {
		return vault.Secret{}, nil
	}
	return o.Open(ctx, store.GrantSecretBinding(cc.Connection, store.BoundOrigins(cc.Credential.GrantOrigins)), cc.Credential.GrantSecret)
}

// presented is the client a minted connection's calls (mint, revocation) present
// (oauthflow.Provider.ConnectionClient: its own client, or the provider's) and the origins
// of what they carry, for vault.CheckOrigin: the grant secret's (bound to the token
// endpoint when it was stored) and the provider client's when it is presented.
func presented(p oauthflow.Provider, client oauthflow.ClientCredentials, grant vault.Secret, cc store.ConnectionCredential) (oauthflow.ClientCredentials, []vault.Origins, error) {
	var bound []vault.Origins
	if !grant.IsZero() {
		bound = append(bound, store.BoundOrigins(cc.Credential.GrantOrigins))
	}
	if p.MintUsesProviderClient(!grant.IsZero()) {
		bound = append(bound, client.SecretBindings()...)
	}
	client, err := p.ConnectionClient(client, grant)
	return client, bound, err
}

// ClassifyMint is Classify for a mint: a refusal of the credential itself —
// invalid_client (wrong or revoked client secret or key), unauthorized_client (the grant
// type withdrawn), invalid_grant (an assertion's key or subject refused) — or a grant
// secret that cannot be used at all needs re-authorization (a new credential), not a retry.
func ClassifyMint(err error, now time.Time) *Failure {
	if errors.Is(err, oauthflow.ErrInvalidKey) || errors.Is(err, oauthflow.ErrInvalidGrantSecret) {
		return &Failure{Class: ClassInvalidGrant, Code: "invalid_credential", cause: err}
	}
	f := Classify(err, now)
	switch f.Code {
	case "invalid_client", "unauthorized_client", "invalid_grant":
		f.Class = ClassInvalidGrant
	}
	return f
}

// NeedsMint reports whether the row holds no access token yet for a minted-mode
// connection (none was ever committed): it mints before serving.
func needsMint(c store.Connection) bool {
	return oauthflow.AuthMode(c.AuthMode).Minted() && c.CredentialPrefix == ""
}
