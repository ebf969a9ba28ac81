package kms

import (
	"context"
	"errors"
	"time"
)

// KEKObserver is told of every call of an observed KEK: the operation (OpWrap, OpUnwrap
// or OpPing), how long it took and, for a failure, its kind (FailureKind); "" on success.
type KEKObserver = func(op string, took time.Duration, failure string)

// The operations a KEKObserver is told of.
const (
	OpWrap   = "wrap"
	OpUnwrap = "unwrap"
	OpPing   = "ping"
)

// The failure kinds FailureKind returns.
const (
	FailureUnavailable = "unavailable"
	FailureDecrypt     = "decrypt"
	FailureUnknownKey  = "unknown_key"
	FailureConfig      = "config"
	FailureCanceled    = "canceled"
	FailureOther       = "other"
)

// FailureKind names the kind of a KEK call's error, for counting failures by kind.
func FailureKind(err error) string {
	switch {
	case errors.Is(err, ErrUnavailable):
		return FailureUnavailable
	case errors.Is(err, ErrDecrypt):
		return FailureDecrypt
	case errors.Is(err, ErrUnknownKey):
		return FailureUnknownKey
	case errors.Is(err, ErrConfig):
		return FailureConfig
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return FailureCanceled
	}
	return FailureOther
}

// Observe returns k with every call reported to observe (metrics instrumentation).
// Errors, ids and results pass through unchanged. A nil k or observe returns k.
func Observe(k KEK, observe KEKObserver) KEK {
	if k == nil || observe == nil {
		return k
	}
	return &observedKEK{kek: k, observe: observe}
}

// ObserveRing returns a ring of the same KEKs, each observed by observer(its id) (see
// Observe). The new ring closes the same KEKs as r; use one or the other.
func ObserveRing(r *Ring, observer func(kekID string) KEKObserver) *Ring {
	return r.Map(func(k KEK) KEK { return Observe(k, observer(k.ID())) })
}

type observedKEK struct {
	kek     KEK
	observe KEKObserver
}

var _ KEK = (*observedKEK)(nil)

func (k *observedKEK) ID() string { return k.kek.ID() }

func (k *observedKEK) Wrap(ctx context.Context, dek, aad []byte) (WrappedKey, error) {
	start := time.Now()
	w, err := k.kek.Wrap(ctx, dek, aad)
	k.report(OpWrap, start, err)
	return w, err
}

func (k *observedKEK) Unwrap(ctx context.Context, w WrappedKey, aad []byte) ([]byte, error) {
	start := time.Now()
	dek, err := k.kek.Unwrap(ctx, w, aad)
	k.report(OpUnwrap, start, err)
	return dek, err
}

func (k *observedKEK) Ping(ctx context.Context) error {
	start := time.Now()
	err := k.kek.Ping(ctx)
	k.report(OpPing, start, err)
	return err
}

func (k *observedKEK) Close() error { return k.kek.Close() }

func (k *observedKEK) report(op string, start time.Time, err error) {
	failure := ""
	if err != nil {
		failure = FailureKind(err)
	}
	k.observe(op, time.Since(start), failure)
}
