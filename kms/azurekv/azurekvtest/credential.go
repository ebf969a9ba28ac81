package azurekvtest

import (
	"context"
	"sort"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// Credential is an azcore.TokenCredential for a Server: it returns the server's token (or
// Token, when set) and records the scopes and tenants it was asked for.
type Credential struct {
	s     *Server
	token string
	// Token overrides the token handed out (a wrong one, in tests).
	Token string
}

// GetToken implements azcore.TokenCredential.
func (c *Credential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	for _, sc := range o.Scopes {
		c.s.scopes.Store(sc+" tenant="+o.TenantID, true)
	}
	tok := c.token
	if c.Token != "" {
		tok = c.Token
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// Scopes lists the scopes (with the tenant) that tokens were requested for.
func (s *Server) Scopes() []string {
	var out []string
	s.scopes.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	sort.Strings(out)
	return out
}
