package admin

import "context"

// purposeAnomaly is the key of the anomaly detection's client baseline
// (internal/audit/anomaly_clients.go): the baseline keeps HMAC-SHA256 under it of each
// client address and certificate an API key used, so a copy of the database does not list
// where the keys are used from. A key set like the others (32 bytes from crypto/rand,
// sealed under the client-secret keyring), but not rotatable: a new key would make every
// known client new again.
const purposeAnomaly = "anomaly"

// anomalyKeyLabel derives the hashing key from the stored one (one key, one use).
const anomalyKeyLabel = "authpipe-proxy/v1 derive: anomaly client baseline hash key"

// AnomalyClientKey returns the client baseline's hashing key.
func (s *Service) AnomalyClientKey(ctx context.Context) ([]byte, error) {
	k, err := s.anomaly.Active(ctx)
	if err != nil {
		return nil, err
	}
	return k.MAC([]byte(anomalyKeyLabel)), nil
}
