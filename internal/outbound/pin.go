package outbound

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"

	"github.com/authpipe/authpipe-proxy/internal/tlsutil"
)

const pinPrefix = "sha256/"

// SPKIPin returns the pin of cert in the form Policy.Pins takes:
// "sha256/" + base64(SHA-256(SubjectPublicKeyInfo)) (RFC 7469 §2.4). Pinning the key, not
// the certificate, survives re-issuance with the same key.
func SPKIPin(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return pinPrefix + base64.StdEncoding.EncodeToString(sum[:])
}

// pinSet holds decoded pins.
type pinSet map[[sha256.Size]byte]struct{}

func parsePins(pins []string) (pinSet, error) {
	if len(pins) == 0 {
		return nil, nil
	}
	set := make(pinSet, len(pins))
	for i, p := range pins {
		sum, ok := tlsutil.ParsePin(p)
		if !ok {
			return nil, fmt.Errorf("pin %d is not of the form sha256/<base64 of 32 bytes>", i)
		}
		set[sum] = struct{}{}
	}
	return set, nil
}

// verifyConnection runs after Go's normal chain verification (it is never a substitute:
// InsecureSkipVerify stays false) and requires that some certificate of some verified
// chain carry a pinned key.
func (s pinSet) verifyConnection(cs tls.ConnectionState) error {
	if len(cs.VerifiedChains) == 0 {
		return fmt.Errorf("%w: no verified chain", ErrPinMismatch)
	}
	for _, chain := range cs.VerifiedChains {
		for _, cert := range chain {
			if _, ok := s[sha256.Sum256(cert.RawSubjectPublicKeyInfo)]; ok {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: server %s presented no pinned key", ErrPinMismatch, cs.ServerName)
}
