package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/metrics"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/kmstest"
	"github.com/authpipe/authpipe-proxy/kms/local"
)

func openLocal(t *testing.T) kms.KEK {
	t.Helper()
	k, err := local.Open("local://"+filepath.Join(t.TempDir(), "kek.key"), local.Options{Create: true})
	require.NoError(t, err)
	return k
}

// The instrumented KEK is a KEK: the whole conformance suite passes through it.
func TestInstrumentedKEKConformance(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{})
	kmstest.Run(t, func(t *testing.T) kms.KEK { return metrics.InstrumentKEK(openLocal(t), m) })
	// The suite's calls were observed under the local backend.
	n := sampleCount(t, m, "authpipe_kms_request_duration_seconds", `backend="local",operation="unwrap"`)
	require.Positive(t, n)
	require.Positive(t, counterValue(t, m, "authpipe_kms_errors_total", `backend="local",error="decrypt",operation="unwrap"`),
		"the suite's tampered unwraps count as decrypt errors")
}

// failingKEK fails every call with a fixed error.
type failingKEK struct {
	id  string
	err error
}

func (f failingKEK) ID() string { return f.id }
func (f failingKEK) Wrap(context.Context, []byte, []byte) (kms.WrappedKey, error) {
	return kms.WrappedKey{}, f.err
}
func (f failingKEK) Unwrap(context.Context, kms.WrappedKey, []byte) ([]byte, error) {
	return nil, f.err
}
func (f failingKEK) Ping(context.Context) error { return f.err }
func (f failingKEK) Close() error               { return nil }

func TestKEKErrorsByBackendAndKind(t *testing.T) {
	for _, tc := range []struct {
		id, backend string
		err         error
		kind        string
	}{
		{"awskms:arn:aws:kms:eu-west-1:1:key/abc", "awskms", fmt.Errorf("throttled: %w", kms.ErrUnavailable), "unavailable"},
		{"vault-transit:127.0.0.1:8200/transit/k", "vault-transit", kms.ErrDecrypt, "decrypt"},
		{"pkcs11:token=t;object=o", "pkcs11", kms.ErrUnknownKey, "unknown_key"},
		{"local:0011", "local", context.DeadlineExceeded, "canceled"},
		{"weird:thing", "other", errors.New("boom"), "other"},
	} {
		t.Run(tc.backend, func(t *testing.T) {
			m := metrics.New(metrics.BuildInfo{})
			k := metrics.InstrumentKEK(failingKEK{tc.id, tc.err}, m)
			require.Equal(t, tc.id, k.ID())
			_, err := k.Wrap(context.Background(), make([]byte, 32), nil)
			require.ErrorIs(t, err, tc.err, "errors pass through unchanged")
			_, err = k.Unwrap(context.Background(), kms.WrappedKey{KEKID: tc.id}, nil)
			require.ErrorIs(t, err, tc.err)
			require.ErrorIs(t, k.Ping(context.Background()), tc.err)
			for _, op := range []string{"wrap", "unwrap", "ping"} {
				sel := fmt.Sprintf(`backend=%q,error=%q,operation=%q`, tc.backend, tc.kind, op)
				require.Equal(t, 1.0, counterValue(t, m, "authpipe_kms_errors_total", sel), sel)
			}
			// The KEK id (which names a key ARN or an HSM token) is not a label value.
			require.NotContains(t, scrape(t, m), tc.id)
		})
	}
}

func TestInstrumentRingKeepsEveryKEK(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{})
	old, cur := openLocal(t), openLocal(t)
	ring, err := kms.NewRing(cur, old)
	require.NoError(t, err)
	ir := m.InstrumentRing(ring)
	t.Cleanup(func() { _ = ir.Close() })
	ctx := context.Background()
	w, err := old.Wrap(ctx, make([]byte, kms.DEKSize), []byte("aad"))
	require.NoError(t, err)
	_, err = ir.Unwrap(ctx, w, []byte("aad"))
	require.NoError(t, err, "the previous KEK still unwraps through the instrumented ring")
	require.True(t, ir.Has(old.ID()))
	require.Equal(t, cur.ID(), ir.Current().ID())
	require.Equal(t, 1, sampleCount(t, m, "authpipe_kms_request_duration_seconds", `backend="local",operation="unwrap"`))
}

func TestHTTPTokensRefreshesAuditLabelsAreBounded(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{Version: "v1.2.3", Revision: "abc123"})
	m.SetCatalog([]string{"github", "stripe"})
	m.ObserveHTTP("/v1/connections/:id/token", "GET", 200, time.Millisecond)
	m.ObserveHTTP(metrics.Unmatched, "BREW", 404, time.Millisecond)
	m.ObserveHTTP(metrics.Unmatched, "GET", 1000, time.Millisecond)
	m.TokenRead("api_key", "success")
	m.TokenRead("sk_live_secret", "conn_123") // folded, never a label
	m.Refresh("github", metrics.OutcomeSuccess)
	m.Refresh("acme-internal-ws_9", "ap_secret")
	m.AuditWrite(7, nil)
	m.AuditWrite(7, errors.New("db down"))
	m.AuditChainBroken()
	require.NoError(t, m.ObserveAuditQueue(func() int { return 3 }))
	require.NoError(t, m.ObserveDEKCache("credentials", func() int { return 2 }))
	require.Error(t, m.ObserveDEKCache("credentials", func() int { return 2 }), "registering twice is refused")

	for _, tc := range []struct {
		family, sel string
		want        float64
	}{
		{"authpipe_token_reads_total", `credential_type="api_key",outcome="success"`, 1},
		{"authpipe_token_reads_total", `credential_type="unknown",outcome="other"`, 1},
		{"authpipe_token_refreshes_total", `outcome="success",provider="github"`, 1},
		{"authpipe_token_refreshes_total", `outcome="error",provider="custom"`, 1},
		{"authpipe_audit_batch_writes_total", `outcome="success"`, 1},
		{"authpipe_audit_batch_writes_total", `outcome="failure"`, 1},
		{"authpipe_audit_events_appended_total", ``, 7},
		{"authpipe_audit_queue_depth", ``, 3},
		{"authpipe_audit_chain_breaks_total", ``, 1},
		{"authpipe_dek_cache_entries", `purpose="credentials"`, 2},
		{"authpipe_provider_catalog_size", ``, 2},
		{"authpipe_build_info", `go_version=`, 1},
	} {
		t.Run(tc.family+"{"+tc.sel+"}", func(t *testing.T) {
			require.Equal(t, tc.want, counterValue(t, m, tc.family, tc.sel))
		})
	}
	require.Equal(t, 1, sampleCount(t, m, "authpipe_http_request_duration_seconds", `code="404",method="other",route="unmatched"`))
	require.Equal(t, 1, sampleCount(t, m, "authpipe_http_request_duration_seconds", `code="other",method="GET",route="unmatched"`))
	out := scrape(t, m)
	for _, bad := range []string{"BREW", "sk_live", "conn_", "ws_9", "ap_secret", "acme"} {
		require.NotContains(t, out, bad)
	}
}

// The hot path's observation allocates nothing once its series exists.
func TestObserveHTTPDoesNotAllocate(t *testing.T) {
	m := metrics.New(metrics.BuildInfo{})
	m.ObserveHTTP("/v1/connections/:id/token", "GET", 200, time.Millisecond)
	allocs := testing.AllocsPerRun(1000, func() {
		m.ObserveHTTP("/v1/connections/:id/token", "GET", 200, time.Millisecond)
		m.TokenRead("api_key", "success")
	})
	require.Zero(t, allocs)
}

// ---- helpers ----

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	var b strings.Builder
	mfs, err := m.Registry().Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		b.WriteString(mf.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// lines returns the text-format sample lines of a family whose labels contain sel.
func lines(t *testing.T, m *metrics.Metrics, name, sel string) []string {
	t.Helper()
	var buf strings.Builder
	require.NoError(t, writeText(&buf, m))
	var out []string
	for _, l := range strings.Split(buf.String(), "\n") {
		if strings.HasPrefix(l, name) && (sel == "" || strings.Contains(l, sel)) {
			out = append(out, l)
		}
	}
	return out
}

func counterValue(t *testing.T, m *metrics.Metrics, name, sel string) float64 {
	t.Helper()
	ls := lines(t, m, name+"{", sel)
	if sel == "" {
		ls = append(ls, lines(t, m, name+" ", "")...)
	}
	require.Len(t, ls, 1, "%s{%s}", name, sel)
	var v float64
	_, err := fmt.Sscan(ls[0][strings.LastIndexByte(ls[0], ' ')+1:], &v)
	require.NoError(t, err)
	return v
}

func sampleCount(t *testing.T, m *metrics.Metrics, name, sel string) int {
	t.Helper()
	return int(counterValue(t, m, name+"_count", sel))
}

// writeText renders the registry in the text exposition format.
func writeText(w io.Writer, m *metrics.Metrics) error {
	mfs, err := m.Registry().Gather()
	if err != nil {
		return err
	}
	enc := expfmt.NewEncoder(w, expfmt.NewFormat(expfmt.TypeTextPlain))
	for _, mf := range mfs {
		if err := enc.Encode(mf); err != nil {
			return err
		}
	}
	return nil
}
