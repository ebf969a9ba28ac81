package kms

import (
	"context"
	"errors"
	"fmt"
)

// Ring is the set of KEKs a deployment holds for one purpose: the current one wraps and
// unwraps, the previous ones (AUTHPIPE_KEK_PREVIOUS_URIS) only unwrap, until rotation has
// re-wrapped every DEK under the current one.
type Ring struct {
	current  KEK
	previous []KEK
}

// NewRing returns a ring. current must not be nil; previous keys with the same ID as
// current are ignored.
func NewRing(current KEK, previous ...KEK) (*Ring, error) {
	if current == nil {
		return nil, fmt.Errorf("%w: no current KEK", ErrConfig)
	}
	r := &Ring{current: current}
	seen := map[string]bool{current.ID(): true}
	for _, p := range previous {
		if p == nil || seen[p.ID()] {
			continue
		}
		seen[p.ID()] = true
		r.previous = append(r.previous, p)
	}
	return r, nil
}

// Current returns the KEK that wraps new DEKs.
func (r *Ring) Current() KEK { return r.current }

// Wrap wraps under the current KEK.
func (r *Ring) Wrap(ctx context.Context, dek, aad []byte) (WrappedKey, error) {
	return r.current.Wrap(ctx, dek, aad)
}

// Unwrap picks the KEK by the wrapped key's KEKID and tries nothing else.
func (r *Ring) Unwrap(ctx context.Context, w WrappedKey, aad []byte) ([]byte, error) {
	if k := r.lookup(w.KEKID); k != nil {
		return k.Unwrap(ctx, w, aad)
	}
	return nil, fmt.Errorf("%w: %q is not configured", ErrUnknownKey, w.KEKID)
}

// Has reports whether the ring can unwrap keys made by the KEK with this id.
func (r *Ring) Has(id string) bool { return r.lookup(id) != nil }

func (r *Ring) lookup(id string) KEK {
	if r.current.ID() == id {
		return r.current
	}
	for _, p := range r.previous {
		if p.ID() == id {
			return p
		}
	}
	return nil
}

// Ping checks the current KEK only: it is the one every new workspace needs.
func (r *Ring) Ping(ctx context.Context) error { return r.current.Ping(ctx) }

// Close closes every KEK of the ring.
func (r *Ring) Close() error {
	errs := []error{r.current.Close()}
	for _, p := range r.previous {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}
