package store

import (
	"context"
	"errors"

	"gorm.io/gorm"

	"github.com/authpipe/authpipe-proxy/internal/audit"
)

// apiKeyDPoP binds an API key to a DPoP public key by its RFC 7638 thumbprint (RFC 9449).
type apiKeyDPoP struct {
	APIKeyID string `gorm:"primaryKey;column:api_key_id"`
	JKT      string `gorm:"column:jkt"`
}

// TableName implements gorm's tabler.
func (apiKeyDPoP) TableName() string { return "api_key_dpop" }

// InsertDPoPAPIKey stores a key bound to the DPoP key with thumbprint jkt, and its audit
// event, in one transaction: the key never exists unbound.
func (s *Store) InsertDPoPAPIKey(ctx context.Context, k APIKey, jkt string, evs ...audit.Event) error {
	if jkt == "" {
		return errors.New("store: empty DPoP thumbprint")
	}
	return s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Create(&k).Error; err != nil {
			return err
		}
		if err := tx.Create(&apiKeyDPoP{APIKeyID: k.ID, JKT: jkt}).Error; err != nil {
			return err
		}
		return s.appendEvents(tx, evs)
	})
}

// APIKeyDPoPJKT returns the thumbprint a key is bound to, or "" for an unbound key.
func (s *Store) APIKeyDPoPJKT(ctx context.Context, keyID string) (string, error) {
	var rows []apiKeyDPoP
	if err := s.db.WithContext(ctx).Where("api_key_id = ?", keyID).Limit(1).Find(&rows).Error; err != nil {
		return "", s.classify(err)
	}
	if len(rows) == 0 {
		return "", nil
	}
	return rows[0].JKT, nil
}
