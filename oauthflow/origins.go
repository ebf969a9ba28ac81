package oauthflow

import "github.com/authpipe/authpipe-proxy/vault"

// The origins each credential of a provider is bound to when it is stored (vault's origin
// binding, DESIGN.md "Where a credential may go"). A credential keeps the binding it was
// stored with; a later change of the provider's URLs does not move it.

// AccessTokenOrigins: the API base, the health check and the revocation endpoint.
func (p Provider) AccessTokenOrigins() vault.Origins {
	return vault.NewOrigins(p.APIBaseURL, p.HealthCheckURL, p.RevocationURL)
}

// APIKeyOrigins: the API base and the health check.
func (p Provider) APIKeyOrigins() vault.Origins {
	return vault.NewOrigins(p.APIBaseURL, p.HealthCheckURL)
}

// RefreshTokenOrigins: the token, refresh and revocation endpoints. A client secret is
// bound to the same origins.
func (p Provider) RefreshTokenOrigins() vault.Origins {
	return vault.NewOrigins(p.TokenURL, p.RefreshURL, p.RevocationURL)
}

// ClientSecretOrigins: the token, refresh and revocation endpoints, where a templated
// provider's URLs count as origin patterns (vault.MatchOrigin: https://{}.myshopify.com
// fits every shop's token endpoint, and no other site), since its one client secret goes
// to every connection's filled token endpoint.
func (p Provider) ClientSecretOrigins() vault.Origins {
	return vault.NewOriginPatterns(p.TokenURL, p.RefreshURL, p.RevocationURL)
}

// GrantSecretOrigins: the token endpoint, where a machine connection's grant secret (its
// own client, its service-account key) authenticates or signs for its minted tokens.
func (p Provider) GrantSecretOrigins() vault.Origins {
	return vault.NewOrigins(p.TokenURL)
}

// VerifierOrigins: the token endpoint, where the PKCE verifier goes with the code.
func (p Provider) VerifierOrigins() vault.Origins {
	return vault.NewOrigins(p.TokenURL)
}

// SecretBindings are the bindings a token-endpoint call carries for the client: the client
// secret's when one is sent (and the next secret's during a rotation: it may be sent too),
// none for a public client.
func (c ClientCredentials) SecretBindings() []vault.Origins {
	var out []vault.Origins
	if !c.ClientSecret.IsZero() {
		out = append(out, c.SecretOrigins)
	}
	if !c.NextSecret.IsZero() {
		out = append(out, c.NextSecretOrigins)
	}
	return out
}
