package proxy

import (
	"context"
	"net/http"
	"net/url"

	"github.com/authpipe/authpipe-proxy/refresher"
	"github.com/authpipe/authpipe-proxy/vault"
)

// boundClient checks that the forward to target may carry the connection's credential
// (vault.CheckOrigin with the origins the credential is bound to) and returns hc with
// every redirect it follows checked the same way. Refused: nothing is sent, 409
// origin_changed, and a credential.binding_refused event.
func (s *Server) boundClient(ctx context.Context, hc *http.Client, target *url.URL, cred refresher.Credential, actor string) (*http.Client, error) {
	use := vault.Use{WorkspaceID: cred.Conn.WorkspaceID, ConnectionID: cred.Conn.ID, Actor: actor, Purpose: vault.UseForward}
	if err := vault.CheckOrigin(ctx, s.store, use, target.String(), cred.Origins); err != nil {
		return nil, err
	}
	follow := hc.CheckRedirect
	bound := *hc
	bound.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if follow != nil {
			if err := follow(req, via); err != nil {
				return err // not followed (another origin, too many): the 3xx or the error stands
			}
		}
		return vault.CheckOrigin(ctx, s.store, use, req.URL.String(), cred.Origins)
	}
	return &bound, nil
}
