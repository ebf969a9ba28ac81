package vault_test

import (
	"context"
	"crypto/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/vault"
)

// memStore is an in-memory vault.DEKStore with the semantics vault/store must have.
type memStore struct {
	mu     sync.Mutex
	byID   map[string]vault.DEKRecord
	active map[string]string // workspace|purpose -> id of the newest DEK
	reads  atomic.Int64

	// beforeInsert, when set, runs at the start of InsertDEK (without the lock held).
	beforeInsert func(rec vault.DEKRecord)
}

var _ vault.DEKStore = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{byID: map[string]vault.DEKRecord{}, active: map[string]string{}}
}

func activeKey(ws string, p vault.Purpose) string { return ws + "|" + string(p) }

func (s *memStore) ActiveDEK(_ context.Context, ws string, p vault.Purpose) (vault.DEKRecord, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.active[activeKey(ws, p)]
	if !ok {
		return vault.DEKRecord{}, vault.ErrNotFound
	}
	return cloneRec(s.byID[id]), nil
}

func (s *memStore) DEK(_ context.Context, id string) (vault.DEKRecord, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.byID[id]
	if !ok {
		return vault.DEKRecord{}, vault.ErrNotFound
	}
	return cloneRec(rec), nil
}

func (s *memStore) InsertDEK(_ context.Context, rec vault.DEKRecord) error {
	if s.beforeInsert != nil {
		s.beforeInsert(rec)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := activeKey(rec.WorkspaceID, rec.Purpose)
	if _, ok := s.active[k]; ok {
		return vault.ErrDEKExists
	}
	s.byID[rec.ID] = cloneRec(rec)
	s.active[k] = rec.ID
	return nil
}

// put stores a record as is (tampering, foreign rows), making it active when asked.
func (s *memStore) put(rec vault.DEKRecord, active bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[rec.ID] = cloneRec(rec)
	if active {
		s.active[activeKey(rec.WorkspaceID, rec.Purpose)] = rec.ID
	}
}

// deleteWorkspace removes every DEK of the workspace (crypto-shredding).
func (s *memStore) deleteWorkspace(ws string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, rec := range s.byID {
		if rec.WorkspaceID == ws {
			delete(s.byID, id)
			delete(s.active, activeKey(ws, rec.Purpose))
		}
	}
}

func cloneRec(r vault.DEKRecord) vault.DEKRecord {
	r.Wrapped = append([]byte(nil), r.Wrapped...)
	return r
}

// countingKEK wraps a real local KEK, counts calls and can play an unreachable KMS.
type countingKEK struct {
	kms.KEK
	wraps, unwraps atomic.Int64
	down           atomic.Bool
	unwrapDelay    time.Duration
	onUnwrap       func() // runs inside Unwrap, before it answers
}

var _ kms.KEK = (*countingKEK)(nil)

func newCountingKEK(t testing.TB) *countingKEK {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	k, err := local.New(key)
	require.NoError(t, err)
	return &countingKEK{KEK: k}
}

func (k *countingKEK) Wrap(ctx context.Context, dek, aad []byte) (kms.WrappedKey, error) {
	k.wraps.Add(1)
	if k.down.Load() {
		return kms.WrappedKey{}, kms.ErrUnavailable
	}
	return k.KEK.Wrap(ctx, dek, aad)
}

func (k *countingKEK) Unwrap(ctx context.Context, w kms.WrappedKey, aad []byte) ([]byte, error) {
	k.unwraps.Add(1)
	if k.unwrapDelay > 0 {
		time.Sleep(k.unwrapDelay)
	}
	if k.onUnwrap != nil {
		k.onUnwrap()
	}
	if k.down.Load() {
		return nil, kms.ErrUnavailable
	}
	return k.KEK.Unwrap(ctx, w, aad)
}

func (k *countingKEK) Ping(ctx context.Context) error {
	if k.down.Load() {
		return kms.ErrUnavailable
	}
	return k.KEK.Ping(ctx)
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fixture is a keyring over a counting KEK and a memory store.
type fixture struct {
	kek   *countingKEK
	store *memStore
	clock *fakeClock
	kr    *vault.Keyring
}

func newFixture(t testing.TB, purpose vault.Purpose, opts ...vault.Option) *fixture {
	f := &fixture{kek: newCountingKEK(t), store: newMemStore(), clock: newFakeClock()}
	f.kr = f.keyring(t, purpose, opts...)
	return f
}

// keyring returns another keyring (a cold cache, e.g. another replica) over the same
// KEK, store and clock.
func (f *fixture) keyring(t testing.TB, purpose vault.Purpose, opts ...vault.Option) *vault.Keyring {
	ring, err := kms.NewRing(f.kek)
	require.NoError(t, err)
	kr, err := vault.NewKeyring(purpose, ring, f.store, append([]vault.Option{vault.WithClock(f.clock.Now)}, opts...)...)
	require.NoError(t, err)
	return kr
}
