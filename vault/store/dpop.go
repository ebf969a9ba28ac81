package store

import (
	"context"
	"errors"
	"time"

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

// ClaimDPoPJTI records a DPoP proof's jti for the API key keyID until expires (rounded up
// to the second) and reports whether it was new: false when the pair is recorded and not
// expired, which is a replay on this or another replica. An expired row of the pair is
// taken over. It is the shared store of internal/dpop (dpop.ReplayStore).
func (s *Store) ClaimDPoPJTI(ctx context.Context, keyID, jti string, expires time.Time) (bool, error) {
	exp := expires.Unix()
	if expires.Nanosecond() != 0 {
		exp++
	}
	res := s.db.WithContext(ctx).Exec(`INSERT INTO dpop_jti (api_key_id, jti, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (api_key_id, jti) DO UPDATE SET expires_at = excluded.expires_at
		WHERE dpop_jti.expires_at < ?`, keyID, jti, exp, s.now().Unix())
	if res.Error != nil {
		return false, s.classify(res.Error)
	}
	return res.RowsAffected == 1, nil
}

// DeleteExpiredDPoPJTIs deletes the DPoP jtis that expired before cutoff, batch rows per
// statement (default 5,000), and returns how many went.
func (s *Store) DeleteExpiredDPoPJTIs(ctx context.Context, cutoff time.Time, batch int) (int64, error) {
	if batch <= 0 {
		batch = 5000
	}
	var total int64
	for {
		res := s.db.WithContext(ctx).Exec(`DELETE FROM dpop_jti WHERE (api_key_id, jti) IN
			(SELECT api_key_id, jti FROM dpop_jti WHERE expires_at < ? LIMIT ?)`, cutoff.Unix(), batch)
		if res.Error != nil {
			return total, s.classify(res.Error)
		}
		total += res.RowsAffected
		if res.RowsAffected < int64(batch) {
			return total, nil
		}
	}
}
