package azurekv

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"

	"github.com/authpipe/authpipe-proxy/kms"
)

var (
	// errResponse: a 200 whose content is not what was asked for.
	errResponse = errors.New("azurekv: unexpected response")
	// errChallenge: a challenge for a resource other than the vault's domain.
	errChallenge = errors.New("azurekv: refused challenge")
)

// mapError is the one place Key Vault errors become kms sentinels (see the package doc).
// The SDK's error stays in the chain: it names the operation, the status, Key Vault's
// error code and the request id, never key material.
func mapError(op string, err error) error {
	var re *azcore.ResponseError
	if op == "unwrap" && errors.As(err, &re) && re.StatusCode == http.StatusBadRequest {
		return fmt.Errorf("azurekv: %s: %w: %w", op, kms.ErrDecrypt, err)
	}
	return fmt.Errorf("azurekv: %s: %w (%s): %w", op, kms.ErrUnavailable, errorCode(err), err)
}

// errorCode names the failure for logs: Key Vault's error code and status, "timeout",
// "canceled" or "network".
func errorCode(err error) string {
	var re *azcore.ResponseError
	switch {
	case errors.As(err, &re):
		return fmt.Sprintf("%d %s", re.StatusCode, re.ErrorCode)
	case errors.Is(err, errResponse):
		return "bad response"
	case errors.Is(err, errChallenge):
		return "challenge"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return "network"
}
