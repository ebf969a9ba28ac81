package metrics

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// KMS operations and failure kinds (label values), as kms.Observe reports them.
var (
	opNames  = [...]string{"wrap", "unwrap", "ping"}
	errNames = [...]string{"unavailable", "decrypt", "unknown_key", "config", "canceled", "other"}
)

// BackendKind returns the KEK backend of a KEK id ("local:…", "awskms:…",
// "vault-transit:…", "pkcs11:…", "gcpkms:…", "azurekv:…"), or "other".
func BackendKind(kekID string) string {
	scheme, _, _ := strings.Cut(kekID, ":")
	switch scheme {
	case "local", "awskms", "vault-transit", "pkcs11", "gcpkms", "azurekv":
		return scheme
	}
	return Other
}

// KEKObserver returns the observer of the KEK kekID for kms.Observe: call latency by
// backend and operation in authpipe_kms_request_duration_seconds, failures by kind in
// authpipe_kms_errors_total. The label series are made here, once per KEK, so a call
// costs two index lookups and two atomic adds. A nil m returns nil (no observer).
func (m *Metrics) KEKObserver(kekID string) func(op string, took time.Duration, failure string) {
	if m == nil {
		return nil
	}
	backend := BackendKind(kekID)
	var duration [len(opNames)]prometheus.Observer
	var failures [len(opNames)][len(errNames)]prometheus.Counter
	for op := range opNames {
		duration[op] = m.kmsDuration.WithLabelValues(backend, opNames[op])
		for e := range errNames {
			failures[op][e] = m.kmsErrors.WithLabelValues(backend, opNames[op], errNames[e])
		}
	}
	return func(op string, took time.Duration, failure string) {
		o := indexOf(opNames[:], op, -1)
		if o < 0 {
			return
		}
		duration[o].Observe(took.Seconds())
		if failure != "" {
			failures[o][indexOf(errNames[:], failure, len(errNames)-1)].Inc()
		}
	}
}

// indexOf is the index of s in names, or otherwise.
func indexOf(names []string, s string, otherwise int) int {
	for i, n := range names {
		if n == s {
			return i
		}
	}
	return otherwise
}
