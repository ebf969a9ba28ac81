package vault_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
	"github.com/authpipe/authpipe-proxy/vault/store/storetest"
)

// The rotation tests run on the real store, both dialects. Their helpers carry a rw
// prefix so they cannot collide with the keyring tests' fakes in this package.

// rwKEK is a real local KEK that a test can switch off (an unreachable KMS).
type rwKEK struct {
	kms.KEK
	down atomic.Bool
}

var _ kms.KEK = (*rwKEK)(nil)

func rwNewKEK(t testing.TB) *rwKEK {
	t.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	k, err := local.New(key)
	require.NoError(t, err)
	return &rwKEK{KEK: k}
}

func (k *rwKEK) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	if k.down.Load() {
		return kms.WrappedKey{}, fmt.Errorf("test KMS switched off: %w", kms.ErrUnavailable)
	}
	return k.KEK.Wrap(ctx, dek, aad)
}

func (k *rwKEK) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	if k.down.Load() {
		return nil, fmt.Errorf("test KMS switched off: %w", kms.ErrUnavailable)
	}
	return k.KEK.Unwrap(ctx, w, aad)
}

func (k *rwKEK) Ping(ctx context.Context) error {
	if k.down.Load() {
		return kms.ErrUnavailable
	}
	return nil
}

func rwRing(t testing.TB, current kms.KEK, previous ...kms.KEK) *kms.Ring {
	t.Helper()
	r, err := kms.NewRing(current, previous...)
	require.NoError(t, err)
	return r
}

func rwKeyring(t testing.TB, s vault.DEKStore, ring *kms.Ring, opts ...vault.Option) *vault.Keyring {
	t.Helper()
	kr, err := vault.NewKeyring(vault.PurposeCredentials, ring, s, opts...)
	require.NoError(t, err)
	return kr
}

// rwLoadPause paces each load goroutine between operations.
const rwLoadPause = time.Millisecond

func rwBinding(i int) vault.Binding {
	return vault.AccessTokenBinding(fmt.Sprintf("ws_%06d", i), fmt.Sprintf("conn_%06d", i), nil)
}

func rwRandInt(t testing.TB, n int) int {
	t.Helper()
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	require.NoError(t, err)
	return int(v.Int64())
}

// rwSeed gives workspaces [from, to) a DEK (through the keyring, as in production) and
// one sealed token each, with a few goroutines.
func rwSeed(t testing.TB, kr *vault.Keyring, from, to int) [][]byte {
	t.Helper()
	out := make([][]byte, to-from)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := from + w; i < to; i += 4 {
				b := rwBinding(i)
				ct, err := kr.Seal(context.Background(), b, vault.NewSecret("token-"+b.WorkspaceID))
				if err != nil {
					errs <- err
					return
				}
				out[i-from] = ct
			}
		})
	}
	wg.Wait()
	close(errs)
	require.NoError(t, <-errs)
	return out
}

func rwCountEvents(t testing.TB, s *store.Store, typ string) int64 {
	t.Helper()
	var n int64
	require.NoError(t, s.DB().Table("audit_events").Where("type = ?", typ).Count(&n).Error)
	return n
}

func TestRewrapUsesTheKeyringsAssociatedData(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		oldKEK, newKEK := rwNewKEK(t), rwNewKEK(t)
		sealed := rwSeed(t, rwKeyring(t, s, rwRing(t, oldKEK)), 0, 3)

		p, err := vault.Rewrap(ctx, s, rwRing(t, newKEK, oldKEK), vault.PurposeCredentials, vault.RewrapOptions{})
		require.NoError(t, err)
		require.Equal(t, vault.RotationDone, p.State)
		require.EqualValues(t, 3, p.Done)
		require.Equal(t, newKEK.ID(), p.KEKID)

		// A keyring that only knows the new KEK opens what was sealed before: the
		// re-wrapped DEKs carry the very associated data the keyring unwraps with.
		kr := rwKeyring(t, s, rwRing(t, newKEK))
		for i, ct := range sealed {
			got, err := kr.Open(ctx, rwBinding(i), ct)
			require.NoError(t, err)
			require.Equal(t, "token-"+rwBinding(i).WorkspaceID, got.Reveal())
		}
		// A wrapped DEK moved to another workspace's row still does not unwrap.
		a, err := s.ActiveDEK(ctx, rwBinding(0).WorkspaceID, vault.PurposeCredentials)
		require.NoError(t, err)
		_, err = newKEK.Unwrap(ctx, kms.WrappedKey{KEKID: a.KEKID, KEKVersion: a.KEKVersion, Ciphertext: a.Wrapped},
			[]byte("not the associated data"))
		require.ErrorIs(t, err, kms.ErrDecrypt)
	})
}

// TestRotationUnderLoad is issue 3's acceptance test: rotate many workspaces' DEKs while
// 8 goroutines keep reading and writing tokens, with zero failures; afterwards every DEK
// is under the new KEK, each workspace's chain has its kek.rotated event, and with the
// old KEK removed from the configuration everything still opens.
//
// Sizes: 10,000 workspaces on SQLite and 1,000 on PostgreSQL (~17 s + ~15 s on 2 busy
// cores; each PostgreSQL swap costs five round trips, four of them the audit append that
// goes with it, against eight goroutines hammering the same server). Under the race
// detector, which slows the pure-Go SQLite driver and pgx about 15x (10,000 on SQLite
// took 4 minutes), 1,000 each. -short: 300 each. AUTHPIPE_TEST_ROTATION_SIZES=<sqlite>,<pg>
// runs any sizes (10000,10000 passes; it takes minutes).
func TestRotationUnderLoad(t *testing.T) {
	sizes := map[string]int{store.SQLite: 10_000, store.Postgres: 1_000}
	if rwRace {
		sizes = map[string]int{store.SQLite: 1_000, store.Postgres: 1_000}
	}
	if v := os.Getenv("AUTHPIPE_TEST_ROTATION_SIZES"); v != "" {
		var sq, pg int
		_, err := fmt.Sscanf(v, "%d,%d", &sq, &pg)
		require.NoError(t, err, "AUTHPIPE_TEST_ROTATION_SIZES=<sqlite>,<postgres>")
		sizes = map[string]int{store.SQLite: sq, store.Postgres: pg}
	}
	if testing.Short() {
		sizes = map[string]int{store.SQLite: 300, store.Postgres: 300}
	}
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		n := sizes[s.Dialect()]
		oldKEK, newKEK := rwNewKEK(t), rwNewKEK(t)
		start := time.Now()
		latest := rwSeedMap(t, rwKeyring(t, s, rwRing(t, oldKEK)), n)
		t.Logf("%s: seeded %d workspaces in %s", s.Dialect(), n, time.Since(start).Round(time.Millisecond))
		rwRotateUnderLoad(t, s, oldKEK, newKEK, n, latest, 1_000_000, func() {
			oldKEK.down.Store(true) // and cannot be reached anyway
		})
	})
}

// rwSeedMap seeds workspaces [0, n) (see rwSeed) and returns their sealed tokens by index.
func rwSeedMap(t testing.TB, kr *vault.Keyring, n int) map[int][]byte {
	latest := map[int][]byte{}
	for i, ct := range rwSeed(t, kr, 0, n) {
		latest[i] = ct
	}
	return latest
}

// rwRotateUnderLoad rotates every DEK from oldKEK to newKEK while 8 goroutines keep
// reading and writing tokens of workspaces [0, n) (latest holds each one's newest sealed
// token, and gains the workspaces created meanwhile, numbered from newBase), with zero
// failures; afterwards every DEK is under the new KEK, one kek.rotated event was written
// per rotated DEK, and — after retire has taken the old KEK away — a keyring that knows
// only the new KEK opens every workspace's newest token.
func rwRotateUnderLoad(t *testing.T, s *store.Store, oldKEK, newKEK kms.KEK, n int, latest map[int][]byte, newBase int, retire func()) {
	t.Helper()
	ctx := context.Background()
	byKEK, err := s.CountDEKsByKEK(ctx)
	require.NoError(t, err)
	require.Len(t, byKEK, 1, "every DEK starts under the old KEK")
	toRotate := byKEK[oldKEK.ID()]
	require.Positive(t, toRotate)
	eventsBefore := rwCountEvents(t, s, audit.KEKRotated)
	{
		// The deployment after the configuration change: new KEK current, old one previous.
		ring := rwRing(t, newKEK, oldKEK)
		// Small caches, so that most reads and writes miss and go to the store and the
		// KMS while the rotation swaps the very rows they read.
		readers := []*vault.Keyring{
			rwKeyring(t, s, ring, vault.WithCacheSize(16)),
			rwKeyring(t, s, ring, vault.WithCacheSize(16)),
		}
		var (
			mu      sync.Mutex
			reads   atomic.Int64
			writes  atomic.Int64
			created atomic.Int64
			failed  atomic.Int64
			errOnce sync.Once
			firstEr error
		)
		fail := func(err error) {
			failed.Add(1)
			errOnce.Do(func() { firstEr = err })
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				kr := readers[g%len(readers)]
				for it := 0; ; it++ {
					select {
					case <-stop:
						return
					case <-time.After(rwLoadPause):
					}
					i := rwRandInt(t, n)
					if g == 0 && it%4 == 0 {
						// A new workspace: its first DEK is inserted (under the new KEK)
						// while the rotation runs.
						i = newBase + int(created.Add(1)) - 1
					}
					b := rwBinding(i)
					mu.Lock()
					ct := latest[i]
					mu.Unlock()
					if ct != nil {
						got, err := kr.Open(ctx, b, ct)
						if err != nil || got.Reveal() != "token-"+b.WorkspaceID {
							fail(fmt.Errorf("read %s: %w", b.WorkspaceID, err))
							continue
						}
						reads.Add(1)
					}
					ct, err := kr.Seal(ctx, b, vault.NewSecret("token-"+b.WorkspaceID))
					if err != nil {
						fail(fmt.Errorf("write %s: %w", b.WorkspaceID, err))
						continue
					}
					writes.Add(1)
					mu.Lock()
					latest[i] = ct
					mu.Unlock()
				}
			})
		}

		start := time.Now()
		var batches atomic.Int64
		p, err := vault.Rewrap(ctx, s, ring, vault.PurposeCredentials, vault.RewrapOptions{
			Actor: "test", OnProgress: func(vault.Progress) { batches.Add(1) }})
		took := time.Since(start)
		close(stop)
		wg.Wait()
		require.NoError(t, err)
		t.Logf("%s: rotated %d DEKs %s -> %s in %s (%.0f DEKs/s, %d progress reports) during %d reads, %d writes, %d new workspaces",
			s.Dialect(), p.Done, kekKind(oldKEK), kekKind(newKEK), took.Round(time.Millisecond), float64(p.Done)/took.Seconds(),
			batches.Load(), reads.Load(), writes.Load(), created.Load())

		require.NoError(t, firstEr)
		require.Zero(t, failed.Load(), "no read or write may fail during a rotation")
		require.Positive(t, reads.Load())
		require.Positive(t, writes.Load())
		require.Equal(t, vault.RotationDone, p.State)
		require.EqualValues(t, toRotate, p.Done, "every DEK under the old KEK re-wrapped once")
		require.EqualValues(t, toRotate, p.Total)
		require.Zero(t, p.Failed)

		byKEK, err := s.CountDEKsByKEK(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]int64{newKEK.ID(): toRotate + created.Load()}, byKEK, "every DEK under the new KEK")
		require.EqualValues(t, toRotate, rwCountEvents(t, s, audit.KEKRotated)-eventsBefore, "one kek.rotated event per rotated DEK")
		res, err := s.VerifyAudit(ctx, rwBinding(rwRandInt(t, n)).WorkspaceID)
		require.NoError(t, err)
		require.True(t, res.OK)
	}

	// The old KEK leaves the configuration; a fresh replica opens everything.
	retire()
	fresh := rwKeyring(t, s, rwRing(t, newKEK))
	for i, ct := range latest {
		b := rwBinding(i)
		got, err := fresh.Open(ctx, b, ct)
		require.NoError(t, err, b.WorkspaceID)
		require.Equal(t, "token-"+b.WorkspaceID, got.Reveal())
	}
}

// kekKind is the scheme of a KEK id, for logs.
func kekKind(k kms.KEK) string {
	scheme, _, _ := strings.Cut(k.ID(), ":")
	return scheme
}

// rwFailStore simulates a crash at one call: it fails that call, before or after letting
// it reach the store (a batch committed but its progress never saved, say).
type rwFailStore struct {
	vault.RewrapStore
	calls  atomic.Int64
	failAt int64
	after  bool
}

var errKilled = errors.New("killed")

func (f *rwFailStore) hit(call func() error) error {
	if f.calls.Add(1) != f.failAt {
		return call()
	}
	if f.after {
		_ = call()
	}
	return errKilled
}

func (f *rwFailStore) DEK(ctx context.Context, id string) (r vault.DEKRecord, err error) {
	err = f.hit(func() (e error) { r, e = f.RewrapStore.DEK(ctx, id); return })
	return
}

func (f *rwFailStore) DEKsToRewrap(ctx context.Context, p vault.Purpose, kek, after string, limit int) (r []vault.DEKRecord, err error) {
	err = f.hit(func() (e error) { r, e = f.RewrapStore.DEKsToRewrap(ctx, p, kek, after, limit); return })
	return
}

func (f *rwFailStore) CountDEKsToRewrap(ctx context.Context, p vault.Purpose, kek string) (n int64, err error) {
	err = f.hit(func() (e error) { n, e = f.RewrapStore.CountDEKsToRewrap(ctx, p, kek); return })
	return
}

func (f *rwFailStore) SwapWrappedBatch(ctx context.Context, swaps []vault.DEKSwap, actor string) (ok []bool, err error) {
	err = f.hit(func() (e error) { ok, e = f.RewrapStore.SwapWrappedBatch(ctx, swaps, actor); return })
	return
}

func (f *rwFailStore) RotationProgress(ctx context.Context, p vault.Purpose) (r vault.Progress, err error) {
	err = f.hit(func() (e error) { r, e = f.RewrapStore.RotationProgress(ctx, p); return })
	return
}

func (f *rwFailStore) SaveRotationProgress(ctx context.Context, p vault.Progress) error {
	return f.hit(func() error { return f.RewrapStore.SaveRotationProgress(ctx, p) })
}

// TestRewrapResumesAfterAKillAtARandomPoint kills rotations at random store calls (and,
// alternately, by cancelling the context at a random batch), then runs them again: the
// second run completes, a third changes nothing.
func TestRewrapResumesAfterAKillAtARandomPoint(t *testing.T) {
	const n, batch = 300, 20
	trials := 6
	if testing.Short() {
		trials = 2
	}
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		kek := rwNewKEK(t)
		sealed := rwSeed(t, rwKeyring(t, s, rwRing(t, kek)), 0, n)
		keks := []kms.KEK{kek}
		for trial := range trials {
			next := rwNewKEK(t)
			keks = append([]kms.KEK{next}, keks...)
			ring := rwRing(t, keks[0], keks[1:]...)
			opts := vault.RewrapOptions{BatchSize: batch, Actor: "test"}
			var err error
			if trial%3 == 2 {
				// A kill by cancellation at a random batch.
				stopAt := int64(1 + rwRandInt(t, n/batch))
				cctx, cancel := context.WithCancel(ctx)
				var seen atomic.Int64
				opts.OnProgress = func(vault.Progress) {
					if seen.Add(1) == stopAt {
						cancel()
					}
				}
				_, err = vault.Rewrap(cctx, s, ring, vault.PurposeCredentials, opts)
				cancel()
				require.ErrorIs(t, err, context.Canceled, "trial %d", trial)
				opts.OnProgress = nil
			} else {
				// ~3 store calls per batch; a point anywhere in the run.
				fs := &rwFailStore{RewrapStore: s, failAt: int64(1 + rwRandInt(t, 3*n/batch+3)), after: trial%2 == 1}
				_, err = vault.Rewrap(ctx, fs, ring, vault.PurposeCredentials, opts)
				require.ErrorIs(t, err, errKilled, "trial %d: kill at call %d", trial, fs.failAt)
			}
			saved, err := s.RotationProgress(ctx, vault.PurposeCredentials)
			if err == nil && saved.KEKID == keks[0].ID() {
				require.Equal(t, vault.RotationRunning, saved.State, "a killed rotation stays resumable")
			}

			p, err := vault.Rewrap(ctx, s, ring, vault.PurposeCredentials, opts)
			require.NoError(t, err, "trial %d: the second run completes", trial)
			require.Equal(t, vault.RotationDone, p.State)
			require.Equal(t, p.Total, p.Done)
			left, err := s.CountDEKsToRewrap(ctx, vault.PurposeCredentials, keks[0].ID())
			require.NoError(t, err)
			require.Zero(t, left, "trial %d: every DEK under the new KEK", trial)

			events := rwCountEvents(t, s, audit.KEKRotated)
			require.EqualValues(t, int64(n)*int64(trial+1), events, "trial %d: each DEK re-wrapped (and audited) exactly once", trial)
			again, err := vault.Rewrap(ctx, s, ring, vault.PurposeCredentials, opts)
			require.NoError(t, err)
			require.Equal(t, vault.RotationDone, again.State)
			require.Equal(t, p.Done, again.Done, "a third run finds nothing to do")
			require.Equal(t, p.Total, again.Total)
			require.Equal(t, events, rwCountEvents(t, s, audit.KEKRotated), "and writes nothing")
		}
		// Only the newest KEK is needed now.
		kr := rwKeyring(t, s, rwRing(t, keks[0]))
		for i, ct := range sealed {
			_, err := kr.Open(ctx, rwBinding(i), ct)
			require.NoError(t, err)
		}
	})
}

func TestRewrapStopsOnKMSOutageAndResumes(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		oldKEK, newKEK := rwNewKEK(t), rwNewKEK(t)
		rwSeed(t, rwKeyring(t, s, rwRing(t, oldKEK)), 0, 50)
		ring := rwRing(t, newKEK, oldKEK)

		var reports atomic.Int64
		p, err := vault.Rewrap(ctx, s, ring, vault.PurposeCredentials, vault.RewrapOptions{BatchSize: 10,
			OnProgress: func(vault.Progress) {
				if reports.Add(1) == 2 { // after the first batch
					newKEK.down.Store(true)
				}
			}})
		require.ErrorIs(t, err, vault.ErrKMSUnavailable)
		require.ErrorIs(t, err, kms.ErrUnavailable)
		require.Equal(t, vault.RotationRunning, p.State)
		require.EqualValues(t, 10, p.Done)
		left, err := s.CountDEKsToRewrap(ctx, vault.PurposeCredentials, newKEK.ID())
		require.NoError(t, err)
		require.EqualValues(t, 40, left, "nothing half-done: the failed batch was not committed")

		newKEK.down.Store(false)
		p, err = vault.Rewrap(ctx, s, ring, vault.PurposeCredentials, vault.RewrapOptions{BatchSize: 10})
		require.NoError(t, err)
		require.Equal(t, vault.RotationDone, p.State)
		require.EqualValues(t, 50, p.Done)
		require.EqualValues(t, 50, p.Total)
	})
}

func TestRewrapSkipsDEKsThatCannotBeUnwrapped(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		oldKEK, lostKEK, newKEK := rwNewKEK(t), rwNewKEK(t), rwNewKEK(t)
		rwSeed(t, rwKeyring(t, s, rwRing(t, oldKEK)), 0, 5)
		rwSeed(t, rwKeyring(t, s, rwRing(t, lostKEK)), 5, 7) // its KEK is not configured below

		p, err := vault.Rewrap(ctx, s, rwRing(t, newKEK, oldKEK), vault.PurposeCredentials, vault.RewrapOptions{BatchSize: 2})
		require.ErrorIs(t, err, vault.ErrRewrapIncomplete)
		require.Equal(t, vault.RotationDone, p.State)
		require.EqualValues(t, 5, p.Done)
		require.EqualValues(t, 2, p.Failed)
		byKEK, err := s.CountDEKsByKEK(ctx)
		require.NoError(t, err)
		require.Equal(t, map[string]int64{newKEK.ID(): 5, lostKEK.ID(): 2}, byKEK, "the unopenable DEKs are left as they were")
	})
}

func TestRotationStatus(t *testing.T) {
	s := storetest.Open(t, store.SQLite)
	ctx := context.Background()
	oldKEK, newKEK := rwNewKEK(t), rwNewKEK(t)
	rwSeed(t, rwKeyring(t, s, rwRing(t, oldKEK)), 0, 3)
	ring := rwRing(t, newKEK, oldKEK)

	st, err := vault.RotationStatus(ctx, s, ring, vault.PurposeCredentials)
	require.NoError(t, err)
	require.Equal(t, vault.RotationIdle, st.State)
	require.Equal(t, newKEK.ID(), st.KEKID)

	kr := rwKeyring(t, s, ring)
	require.Same(t, ring, kr.Ring())
	_, err = kr.Rewrap(ctx, s, vault.RewrapOptions{})
	require.NoError(t, err)
	st, err = vault.RotationStatus(ctx, s, ring, vault.PurposeCredentials)
	require.NoError(t, err)
	require.Equal(t, vault.RotationDone, st.State)
	require.EqualValues(t, 3, st.Done)

	// A later KEK makes the finished rotation history: idle again until rotated.
	st, err = vault.RotationStatus(ctx, s, rwRing(t, rwNewKEK(t), newKEK), vault.PurposeCredentials)
	require.NoError(t, err)
	require.Equal(t, vault.RotationIdle, st.State)
}

func TestRewrapValidatesOptions(t *testing.T) {
	s := storetest.Open(t, store.SQLite)
	ring := rwRing(t, rwNewKEK(t))
	tests := []struct {
		name    string
		purpose vault.Purpose
		opts    vault.RewrapOptions
	}{
		{"negative batch", vault.PurposeCredentials, vault.RewrapOptions{BatchSize: -1}},
		{"huge batch", vault.PurposeCredentials, vault.RewrapOptions{BatchSize: 1_000_000}},
		{"too many workers", vault.PurposeCredentials, vault.RewrapOptions{Workers: 1000}},
		{"unknown purpose", vault.Purpose("tokens"), vault.RewrapOptions{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := vault.Rewrap(context.Background(), s, ring, tc.purpose, tc.opts)
			require.Error(t, err)
		})
	}
}

// TestCryptoShredding: once a workspace's wrapped DEKs are deleted (and the keyring has
// forgotten them), its ciphertext never opens again, on this replica or a fresh one,
// while another workspace is unaffected.
func TestCryptoShredding(t *testing.T) {
	storetest.ForEachDialect(t, func(t *testing.T, s *store.Store) {
		ctx := context.Background()
		kek := rwNewKEK(t)
		kr := rwKeyring(t, s, rwRing(t, kek))
		sealed := rwSeed(t, kr, 0, 2)
		shredded, kept := rwBinding(0), rwBinding(1)
		_, err := kr.Open(ctx, shredded, sealed[0])
		require.NoError(t, err, "opens before")

		n, err := s.DeleteWorkspaceDEKs(ctx, shredded.WorkspaceID)
		require.NoError(t, err)
		require.EqualValues(t, 1, n)
		kr.Forget(shredded.WorkspaceID)

		for name, k := range map[string]*vault.Keyring{
			"same replica":  kr,
			"fresh replica": rwKeyring(t, s, rwRing(t, kek)),
		} {
			t.Run(name, func(t *testing.T) {
				_, err := k.Open(ctx, shredded, sealed[0])
				require.ErrorIs(t, err, vault.ErrDecrypt)
				got, err := k.Open(ctx, kept, sealed[1])
				require.NoError(t, err)
				require.Equal(t, "token-"+kept.WorkspaceID, got.Reveal())
			})
		}
		// A new seal for the shredded workspace makes a new DEK; the old ciphertext
		// still does not open.
		_, err = kr.Seal(ctx, shredded, vault.NewSecret("new"))
		require.NoError(t, err)
		_, err = rwKeyring(t, s, rwRing(t, kek)).Open(ctx, shredded, sealed[0])
		require.ErrorIs(t, err, vault.ErrDecrypt)
	})
}
