package kms

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/authpipe/authpipe-proxy/internal/tracing"
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
	backend, _, _ := strings.Cut(k.ID(), ":")
	return &observedKEK{kek: k, observe: observe, backend: attribute.String("kms.backend", backend)}
}

// ObserveRing returns a ring of the same KEKs, each observed by observer(its id) (see
// Observe). The new ring closes the same KEKs as r; use one or the other.
func ObserveRing(r *Ring, observer func(kekID string) KEKObserver) *Ring {
	return r.Map(func(k KEK) KEK { return Observe(k, observer(k.ID())) })
}

type observedKEK struct {
	kek     KEK
	observe KEKObserver
	backend attribute.KeyValue // the KEK id's scheme, for spans
}

var _ KEK = (*observedKEK)(nil)

func (k *observedKEK) ID() string { return k.kek.ID() }

func (k *observedKEK) Wrap(ctx context.Context, dek, aad []byte) (WrappedKey, error) {
	start := time.Now()
	ctx, span := k.span(ctx, "kms.wrap")
	w, err := k.kek.Wrap(ctx, dek, aad)
	k.report(OpWrap, start, err)
	tracing.End(span, err)
	return w, err
}

func (k *observedKEK) Unwrap(ctx context.Context, w WrappedKey, aad []byte) ([]byte, error) {
	start := time.Now()
	ctx, span := k.span(ctx, "kms.unwrap")
	dek, err := k.kek.Unwrap(ctx, w, aad)
	k.report(OpUnwrap, start, err)
	tracing.End(span, err)
	return dek, err
}

func (k *observedKEK) Ping(ctx context.Context) error {
	start := time.Now()
	ctx, span := k.span(ctx, "kms.ping")
	err := k.kek.Ping(ctx)
	k.report(OpPing, start, err)
	tracing.End(span, err)
	return err
}

func (k *observedKEK) Close() error { return k.kek.Close() }

// span starts a KEK call's client span (internal/tracing; nothing when tracing is off).
// It carries the backend only: never the key id's details, the DEK or the AAD.
func (k *observedKEK) span(ctx context.Context, name string) (context.Context, trace.Span) {
	ctx, span := tracing.Start(ctx, name, trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(k.backend)
	}
	return ctx, span
}

func (k *observedKEK) report(op string, start time.Time, err error) {
	failure := ""
	if err != nil {
		failure = FailureKind(err)
	}
	k.observe(op, time.Since(start), failure)
}
