//go:build !cgo

package pkcs11

import (
	"context"
	"errors"
	"fmt"

	"github.com/authpipe/authpipe-proxy/kms"
)

// errNoCgo is what a binary built with CGO_ENABLED=0 answers: PKCS#11 modules are C
// libraries, and github.com/miekg/pkcs11 loads them through cgo.
var errNoCgo = fmt.Errorf("%w: pkcs11: built without cgo: PKCS#11 unavailable (rebuild with CGO_ENABLED=1)", kms.ErrConfig)

// Backend is a KEK held in a PKCS#11 token. Without cgo it cannot be opened.
type Backend struct{}

var _ kms.KEK = (*Backend)(nil)

// Open parses uri (so that a bad URI is still reported as such) and then fails: this
// binary was built without cgo.
func Open(_ context.Context, uri string, _ Options) (*Backend, error) {
	if _, err := ParseURI(uri); err != nil {
		return nil, errors.Join(errNoCgo, err)
	}
	return nil, errNoCgo
}

// GenerateKey fails: this binary was built without cgo.
func GenerateKey(_ context.Context, _ string) error { return errNoCgo }

// ID implements kms.KEK.
func (*Backend) ID() string { return "" }

// Wrap implements kms.KEK.
func (*Backend) Wrap(context.Context, []byte, []byte) (kms.WrappedKey, error) {
	return kms.WrappedKey{}, errNoCgo
}

// Unwrap implements kms.KEK.
func (*Backend) Unwrap(context.Context, kms.WrappedKey, []byte) ([]byte, error) {
	return nil, errNoCgo
}

// Ping implements kms.KEK.
func (*Backend) Ping(context.Context) error { return errNoCgo }

// Close implements kms.KEK.
func (*Backend) Close() error { return nil }
