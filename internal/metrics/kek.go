package metrics

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/authpipe/authpipe-proxy/kms"
)

// KMS operations and error kinds (label values).
const (
	opWrap = iota
	opUnwrap
	opPing
	numOps
)

var opNames = [numOps]string{"wrap", "unwrap", "ping"}

const (
	errUnavailable = iota
	errDecrypt
	errUnknownKey
	errConfig
	errCanceled
	errOther
	numErrKinds
)

var errNames = [numErrKinds]string{"unavailable", "decrypt", "unknown_key", "config", "canceled", "other"}

// BackendKind returns the KEK backend of a KEK id ("local:…", "awskms:…",
// "vault-transit:…", "pkcs11:…"), or "other".
func BackendKind(kekID string) string {
	scheme, _, _ := strings.Cut(kekID, ":")
	switch scheme {
	case "local", "awskms", "vault-transit", "pkcs11":
		return scheme
	}
	return Other
}

// instrumentedKEK times every call of a KEK and counts its failures. The label series are
// made once, when it is built, so a call costs a clock read and two atomic adds.
type instrumentedKEK struct {
	kek      kms.KEK
	duration [numOps]prometheus.Observer
	errors   [numOps][numErrKinds]prometheus.Counter
}

var _ kms.KEK = (*instrumentedKEK)(nil)

// InstrumentKEK returns k observed by m: call latency by backend and operation in
// authpipe_kms_request_duration_seconds, failures by kind in authpipe_kms_errors_total.
// Errors, ids and results pass through unchanged. A nil k or m returns k.
func InstrumentKEK(k kms.KEK, m *Metrics) kms.KEK {
	if k == nil || m == nil {
		return k
	}
	backend := BackendKind(k.ID())
	ik := &instrumentedKEK{kek: k}
	for op := range numOps {
		ik.duration[op] = m.kmsDuration.WithLabelValues(backend, opNames[op])
		for e := range numErrKinds {
			ik.errors[op][e] = m.kmsErrors.WithLabelValues(backend, opNames[op], errNames[e])
		}
	}
	return ik
}

// InstrumentRing returns a ring of the same KEKs, each instrumented (see InstrumentKEK).
// The new ring closes the same KEKs as r; use one or the other.
func (m *Metrics) InstrumentRing(r *kms.Ring) *kms.Ring {
	return r.Map(func(k kms.KEK) kms.KEK { return InstrumentKEK(k, m) })
}

func (k *instrumentedKEK) ID() string { return k.kek.ID() }

func (k *instrumentedKEK) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	start := time.Now()
	w, err := k.kek.Wrap(ctx, dek, aad)
	k.observe(opWrap, start, err)
	return w, err
}

func (k *instrumentedKEK) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	start := time.Now()
	dek, err := k.kek.Unwrap(ctx, w, aad)
	k.observe(opUnwrap, start, err)
	return dek, err
}

func (k *instrumentedKEK) Ping(ctx context.Context) error {
	start := time.Now()
	err := k.kek.Ping(ctx)
	k.observe(opPing, start, err)
	return err
}

func (k *instrumentedKEK) Close() error { return k.kek.Close() }

func (k *instrumentedKEK) observe(op int, start time.Time, err error) {
	k.duration[op].Observe(time.Since(start).Seconds())
	if err != nil {
		k.errors[op][errKind(err)].Inc()
	}
}

func errKind(err error) int {
	switch {
	case errors.Is(err, kms.ErrUnavailable):
		return errUnavailable
	case errors.Is(err, kms.ErrDecrypt):
		return errDecrypt
	case errors.Is(err, kms.ErrUnknownKey):
		return errUnknownKey
	case errors.Is(err, kms.ErrConfig):
		return errConfig
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return errCanceled
	}
	return errOther
}
