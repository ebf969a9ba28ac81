//go:build cgo

package pkcs11

import (
	"errors"
	"fmt"

	p11 "github.com/miekg/pkcs11"

	"github.com/authpipe/authpipe-proxy/kms"
)

// isUnavailable reports return values that say the token, the session or the library is
// gone or failing right now: the caller fails closed (503) and may retry later.
func isUnavailable(code uint) bool {
	switch code {
	case
		p11.CKR_HOST_MEMORY,
		p11.CKR_SLOT_ID_INVALID,
		p11.CKR_DEVICE_ERROR,
		p11.CKR_DEVICE_MEMORY,
		p11.CKR_DEVICE_REMOVED,
		p11.CKR_FUNCTION_CANCELED,
		p11.CKR_KEY_HANDLE_INVALID,
		p11.CKR_OBJECT_HANDLE_INVALID,
		p11.CKR_SESSION_CLOSED,
		p11.CKR_SESSION_COUNT,
		p11.CKR_SESSION_HANDLE_INVALID,
		p11.CKR_TOKEN_NOT_PRESENT,
		p11.CKR_TOKEN_NOT_RECOGNIZED,
		p11.CKR_USER_NOT_LOGGED_IN,
		p11.CKR_CRYPTOKI_NOT_INITIALIZED:
		return true
	}
	return false
}

// isAuthFailure reports what C_Decrypt returns for CKM_AES_GCM when the tag does not
// verify (wrong AAD, tampered IV, ciphertext or tag). SoftHSM2 reports CKR_GENERAL_ERROR
// there; the standard code is CKR_ENCRYPTED_DATA_INVALID.
func isAuthFailure(code uint) bool {
	switch code {
	case
		p11.CKR_ENCRYPTED_DATA_INVALID,
		p11.CKR_ENCRYPTED_DATA_LEN_RANGE,
		p11.CKR_GENERAL_ERROR,
		p11.CKR_DATA_INVALID,
		p11.CKR_DATA_LEN_RANGE:
		return true
	}
	return false
}

// opError wraps a PKCS#11 failure of op, adding kms.ErrUnavailable for outages.
func opError(op string, err error) error {
	var code p11.Error
	if errors.As(err, &code) && isUnavailable(uint(code)) {
		return fmt.Errorf("%w: pkcs11 %s: %w", kms.ErrUnavailable, op, err)
	}
	return fmt.Errorf("pkcs11 %s: %w", op, err)
}

// decryptError is opError for C_Decrypt: an authentication failure is kms.ErrDecrypt.
func decryptError(err error) error {
	var code p11.Error
	if errors.As(err, &code) && isAuthFailure(uint(code)) {
		return fmt.Errorf("%w: pkcs11 C_Decrypt: %w", kms.ErrDecrypt, err)
	}
	return opError("C_Decrypt", err)
}
