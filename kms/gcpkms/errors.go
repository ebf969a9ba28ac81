package gcpkms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authpipe/authpipe-proxy/internal/jitter"
	"github.com/authpipe/authpipe-proxy/kms"
)

// mapError is the one place Cloud KMS errors become kms sentinels (see the package doc).
// The gRPC status stays in the chain: its text names the code and Cloud KMS's message,
// never key material or plaintext.
func mapError(op string, err error) error {
	if errors.Is(err, errIntegrity) {
		return fmt.Errorf("gcpkms: %s: %w (checksum): %w", op, kms.ErrUnavailable, err)
	}
	st, _ := status.FromError(err)
	if op == "unwrap" && st.Code() == codes.InvalidArgument && !isChecksumMismatch(st) {
		return fmt.Errorf("gcpkms: %s: %w: %w", op, kms.ErrDecrypt, err)
	}
	return fmt.Errorf("gcpkms: %s: %w (%s): %w", op, kms.ErrUnavailable, errorCode(err), err)
}

// isChecksumMismatch: Cloud KMS answers INVALID_ARGUMENT when a request's *_crc32c does not
// match its data, which is corruption in transit, not a bad ciphertext.
func isChecksumMismatch(st *status.Status) bool {
	return strings.Contains(st.Message(), "checksum")
}

// errorCode names the failure for logs: the gRPC code, "timeout" or "canceled".
func errorCode(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return status.Code(err).String()
}

// retryer retries the transient codes with full-jitter exponential backoff, up to max
// attempts in all (gax calls Retry only after a failed attempt).
type retryer struct {
	attempts   int
	max        int
	maxBackoff time.Duration
}

const baseBackoff = 100 * time.Millisecond

func (r *retryer) Retry(err error) (time.Duration, bool) {
	r.attempts++
	if r.attempts >= r.max {
		return 0, false
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.Internal, codes.DeadlineExceeded:
	default:
		return 0, false
	}
	ceiling := min(r.maxBackoff, baseBackoff<<r.attempts)
	if ceiling <= 0 {
		return 0, true
	}
	return jitter.Duration(ceiling), true
}
