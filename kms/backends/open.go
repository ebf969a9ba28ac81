// Package backends opens a kms.KEK from its URI, dispatching on the scheme to the
// backend packages. It is the only package that imports all of them.
package backends

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/awskms"
	"github.com/authpipe/authpipe-proxy/kms/azurekv"
	"github.com/authpipe/authpipe-proxy/kms/gcpkms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/kms/pkcs11"
	"github.com/authpipe/authpipe-proxy/kms/vaulttransit"
)

// Options apply to every backend; each takes what it needs.
type Options struct {
	// CreateLocal lets the local backend create a missing key file (dev profile).
	CreateLocal bool
	Logger      *slog.Logger
}

// Open returns the KEK that uri names.
func Open(ctx context.Context, uri string, opts Options) (kms.KEK, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	scheme, _, ok := strings.Cut(uri, ":")
	if !ok {
		return nil, fmt.Errorf("%w: %q has no scheme", kms.ErrConfig, uri)
	}
	switch scheme {
	case local.Scheme:
		return local.Open(uri, local.Options{Create: opts.CreateLocal})
	case awskms.Scheme:
		k, err := awskms.Open(ctx, uri, awskms.Options{Logger: opts.Logger})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return k, nil
	case vaulttransit.Scheme:
		k, err := vaulttransit.Open(uri, vaulttransit.WithLogger(opts.Logger))
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return k, nil
	case pkcs11.Scheme:
		k, err := pkcs11.Open(ctx, uri, pkcs11.Options{Logger: opts.Logger})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return k, nil
	case gcpkms.Scheme:
		k, err := gcpkms.Open(ctx, uri, gcpkms.Options{})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return k, nil
	case azurekv.Scheme:
		k, err := azurekv.Open(ctx, uri, azurekv.Options{})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return k, nil
	default:
		return nil, fmt.Errorf("%w: unknown KEK scheme %q (want local, awskms, vault-transit, pkcs11, gcpkms or azurekv)", kms.ErrConfig, scheme)
	}
}

// OpenRing opens the current KEK and any previous ones.
func OpenRing(ctx context.Context, current string, previous []string, opts Options) (*kms.Ring, error) {
	cur, err := Open(ctx, current, opts)
	if err != nil {
		return nil, err
	}
	var prev []kms.KEK
	for _, uri := range previous {
		k, err := Open(ctx, uri, Options{Logger: opts.Logger})
		if err != nil {
			_ = cur.Close()
			for _, p := range prev {
				_ = p.Close()
			}
			return nil, fmt.Errorf("previous KEK: %w", err)
		}
		prev = append(prev, k)
	}
	return kms.NewRing(cur, prev...)
}
