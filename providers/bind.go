package providers

import (
	"context"
	"errors"

	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// BindStore is what the client-secret binding migration needs of the store.
type BindStore interface {
	store.BindProgress
	UnboundProviderSecrets(ctx context.Context, after string, limit int) ([]store.UnboundSecret, error)
	BindProviderSecret(ctx context.Context, old store.ProviderSecret, sealed []byte, origins *store.Strings) error
}

var _ BindStore = (*store.Store)(nil)

// BindLegacySecrets is the origin-binding migration of client secrets stored before
// origin binding (refresher.BindLegacy does the credentials, the same way): each is
// opened, sealed again bound to its configuration's token, refresh and revocation origins
// as they are now, and written under a compare-and-swap on the ciphertext, batch at a
// time after a cursor kept in the database. It returns how many were bound and skipped
// (a secret that cannot be bound stays refused).
func (s *Service) BindLegacySecrets(ctx context.Context, st BindStore, batch int) (bound, skipped int, err error) {
	return store.BindBatches(ctx, st, store.BindProgressClientSecrets, batch, st.UnboundProviderSecrets,
		func(r store.UnboundSecret) string { return r.ProviderID },
		func(ctx context.Context, r store.UnboundSecret) error { return s.bindSecret(ctx, st, r) },
		func(err error) bool { return errors.Is(err, vault.ErrKMSUnavailable) },
		func(store.UnboundSecret, error) {})
}

func (s *Service) bindSecret(ctx context.Context, st BindStore, row store.UnboundSecret) error {
	e, err := entryOf(row.Provider)
	if err != nil {
		return err
	}
	sec, err := s.secrets.Open(ctx, vault.ClientSecretBinding(e.WorkspaceID, e.ID, nil), row.Sealed)
	if err != nil {
		return err
	}
	defer sec.Wipe()
	origins := e.ClientSecretOrigins()
	sealed, err := s.secrets.Seal(ctx, vault.ClientSecretBinding(e.WorkspaceID, e.ID, origins), sec)
	if err != nil {
		return err
	}
	return st.BindProviderSecret(ctx, row.ProviderSecret, sealed, store.StoredOrigins(origins))
}
