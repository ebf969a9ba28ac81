package awskms

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"

	"github.com/authpipe/authpipe-proxy/kms"
)

// mapError is the one place SDK errors become kms sentinels (see the package doc). The
// SDK error is kept in the chain: its text names the operation, the HTTP status, the
// request id and the KMS error code, never key material or plaintext.
func mapError(op string, err error) error {
	var (
		invalid   *types.InvalidCiphertextException
		incorrect *types.IncorrectKeyException
	)
	if errors.As(err, &invalid) || errors.As(err, &incorrect) {
		return fmt.Errorf("awskms: %s: %w: %w", op, kms.ErrDecrypt, err)
	}
	return fmt.Errorf("awskms: %s: %w (%s): %w", op, kms.ErrUnavailable, errorCode(err), err)
}

// errorCode names the failure for logs and metrics: the KMS error code, "timeout",
// "canceled" or "network".
func errorCode(err error) string {
	var api smithy.APIError
	switch {
	case errors.As(err, &api):
		return api.ErrorCode()
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "network"
	}
}

// slogLogger adapts slog to the SDK's logger.
type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(class logging.Classification, format string, v ...any) {
	level := slog.LevelDebug
	if class == logging.Warn {
		level = slog.LevelWarn
	}
	s.l.Log(context.Background(), level, "aws sdk: "+fmt.Sprintf(format, v...), "component", "awskms")
}
