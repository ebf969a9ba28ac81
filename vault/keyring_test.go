package vault_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/vault"
)

func conn(ws, owner, field string) vault.Binding {
	return vault.Binding{WorkspaceID: ws, OwnerID: owner, Field: field}
}

func seal(t testing.TB, kr *vault.Keyring, b vault.Binding, v string) []byte {
	t.Helper()
	env, err := kr.Seal(context.Background(), b, vault.NewSecret(v))
	require.NoError(t, err)
	return env
}

func TestSealOpenRoundTrip(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, vault.PurposeCredentials)
	b := conn("ws_1", "conn_a", "access_token")
	env := seal(t, f.kr, b, "gho_token")
	require.EqualValues(t, 1, f.kek.wraps.Load(), "the first seal creates the workspace's DEK")

	got, err := f.kr.Open(ctx, b, env)
	require.NoError(t, err)
	require.Equal(t, "gho_token", got.Reveal())

	rec, err := f.store.ActiveDEK(ctx, "ws_1", vault.PurposeCredentials)
	require.NoError(t, err)
	e, err := vault.ParseEnvelope(env)
	require.NoError(t, err)
	require.Equal(t, rec.ID, e.DEKID)
	require.Equal(t, f.kek.ID(), rec.KEKID)

	// Another replica (cold cache) opens it with one unwrap, then from its cache.
	other := f.keyring(t, vault.PurposeCredentials)
	for range 3 {
		got, err = other.Open(ctx, b, env)
		require.NoError(t, err)
		require.Equal(t, "gho_token", got.Reveal())
	}
	require.EqualValues(t, 1, f.kek.unwraps.Load())

	env2 := seal(t, other, b, "gho_token")
	require.NotEqual(t, env, env2, "sealing is randomized")
	require.EqualValues(t, 1, f.kek.wraps.Load(), "the second replica reuses the stored DEK")
}

// The moves the associated data must catch: each case seals with one binding or keyring
// and opens with another.
func TestMovedCiphertextFailsToOpen(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials)
	clientSecrets := f.keyring(t, vault.PurposeClientSecrets)
	connA := conn("ws_1", "conn_a", "access_token")
	connB := conn("ws_1", "conn_b", "access_token")
	envA, envB := seal(t, f.kr, connA, "token-a"), seal(t, f.kr, connB, "token-b")
	seal(t, f.kr, conn("ws_2", "conn_c", "access_token"), "token-c") // ws_2 has a DEK of its own

	for name, tc := range map[string]struct {
		kr  *vault.Keyring
		b   vault.Binding
		env []byte
	}{
		"swapped between connections (A's into B)": {f.kr, connB, envA},
		"swapped between connections (B's into A)": {f.kr, connA, envB},
		"moved to another field":                   {f.kr, conn("ws_1", "conn_a", "refresh_token"), envA},
		"moved to another workspace":               {f.kr, conn("ws_2", "conn_a", "access_token"), envA},
		"moved to a workspace without a DEK":       {f.kr, conn("ws_3", "conn_a", "access_token"), envA},
		"moved to another purpose":                 {clientSecrets, connA, envA},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.kr.Open(t.Context(), tc.b, tc.env)
			require.ErrorIs(t, err, vault.ErrDecrypt)
		})
	}
	// Nothing above disturbed the originals.
	got, err := f.kr.Open(t.Context(), connA, envA)
	require.NoError(t, err)
	require.Equal(t, "token-a", got.Reveal())
}

// A credential row whose connection_id is changed to another connection (a relink done
// in the database, not through the API) must not hand the old connection's token to the
// new one.
func TestCredentialRowRelinkedToAnotherConnectionFailsToOpen(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials)
	row := struct {
		ConnectionID string
		AccessToken  []byte
	}{ConnectionID: "conn_alice"}
	row.AccessToken = seal(t, f.kr, conn("ws_1", row.ConnectionID, "access_token"), "alice-token")

	row.ConnectionID = "conn_mallory" // relinked
	_, err := f.kr.Open(t.Context(), conn("ws_1", row.ConnectionID, "access_token"), row.AccessToken)
	require.ErrorIs(t, err, vault.ErrDecrypt)
}

func TestFlippedByteFails(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials)
	b := conn("ws_1", "conn_a", "access_token")
	env := seal(t, f.kr, b, "a-token-of-some-length")
	idLen := int(env[1])
	nonceAt := 2 + idLen
	ctAt := nonceAt + vault.NonceSize
	tagAt := len(env) - vault.TagSize
	classes := map[string][2]int{ // [from, to)
		"version":    {0, 1},
		"id length":  {1, 2},
		"id":         {2, nonceAt},
		"nonce":      {nonceAt, ctAt},
		"ciphertext": {ctAt, tagAt},
		"tag":        {tagAt, len(env)},
	}
	for name, r := range classes {
		t.Run(name, func(t *testing.T) {
			require.Less(t, r[0], r[1])
			for i := r[0]; i < r[1]; i++ {
				for _, mask := range []byte{0x01, 0x80} {
					bad := bytes.Clone(env)
					bad[i] ^= mask
					_, err := f.kr.Open(t.Context(), b, bad)
					require.ErrorIs(t, err, vault.ErrDecrypt, "byte %d ^ %#x", i, mask)
				}
			}
		})
	}
	_, err := f.kr.Open(t.Context(), b, env[:len(env)-1])
	require.ErrorIs(t, err, vault.ErrDecrypt, "truncated")
	_, err = f.kr.Open(t.Context(), b, append(bytes.Clone(env), 0))
	require.ErrorIs(t, err, vault.ErrDecrypt, "extended")
}

func TestTamperedWrappedDEKFailsToUnwrap(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, vault.PurposeCredentials)
	b := conn("ws_1", "conn_a", "access_token")
	env := seal(t, f.kr, b, "tok")
	rec, err := f.store.ActiveDEK(ctx, "ws_1", vault.PurposeCredentials)
	require.NoError(t, err)

	for i := range rec.Wrapped {
		bad := cloneRec(rec)
		bad.Wrapped[i] ^= 0x01
		f.store.put(bad, true)
		_, err := f.keyring(t, vault.PurposeCredentials).Open(ctx, b, env) // cold cache
		require.ErrorIs(t, err, vault.ErrDecrypt, "byte %d", i)
		require.ErrorIs(t, err, kms.ErrDecrypt, "byte %d", i)
	}

	// The wrapped key is bound to its workspace and id: a DEK row relabelled in the
	// database does not unwrap, even for an envelope that names it.
	forge := func(id string) []byte {
		return append(append([]byte{vault.EnvelopeV1, byte(len(id))}, id...), env[2+len(rec.ID):]...)
	}
	for name, tc := range map[string]struct {
		mutate func(r *vault.DEKRecord)
		b      vault.Binding
		env    []byte
	}{
		"relabelled to another workspace": {func(r *vault.DEKRecord) { r.WorkspaceID = "ws_evil" }, conn("ws_evil", "conn_a", "access_token"), env},
		"relabelled to another id":        {func(r *vault.DEKRecord) { r.ID = "dek_moved" }, b, forge("dek_moved")},
	} {
		t.Run(name, func(t *testing.T) {
			moved := cloneRec(rec)
			tc.mutate(&moved)
			f.store.put(moved, false)
			t.Cleanup(func() { f.store.put(rec, true) })
			_, err := f.keyring(t, vault.PurposeCredentials).Open(ctx, tc.b, tc.env)
			require.ErrorIs(t, err, kms.ErrDecrypt)
			require.ErrorIs(t, err, vault.ErrDecrypt)
		})
	}

	// The untouched record still works.
	got, err := f.keyring(t, vault.PurposeCredentials).Open(ctx, b, env)
	require.NoError(t, err)
	require.Equal(t, "tok", got.Reveal())
}

func TestNoRepeatedNonce(t *testing.T) {
	if testing.Short() {
		t.Skip("2^20 seals")
	}
	f := newFixture(t, vault.PurposeCredentials)
	b := conn("ws_1", "conn_a", "access_token")
	one := vault.NewSecret("x")
	seen := make(map[[vault.NonceSize]byte]struct{}, 1<<20)
	var dek string
	for i := range 1 << 20 {
		env, err := f.kr.Seal(t.Context(), b, one)
		if err != nil {
			require.NoError(t, err)
		}
		n := int(env[1])
		if i == 0 {
			dek = string(env[2 : 2+n])
		} else if string(env[2:2+n]) != dek {
			require.Fail(t, "the DEK changed mid-test")
		}
		var nonce [vault.NonceSize]byte
		copy(nonce[:], env[2+n:])
		if _, dup := seen[nonce]; dup {
			require.Failf(t, "repeated nonce", "seal %d repeats a nonce", i)
		}
		seen[nonce] = struct{}{}
	}
	require.Len(t, seen, 1<<20)
	require.EqualValues(t, 1, f.kek.wraps.Load())
	require.EqualValues(t, 0, f.kek.unwraps.Load())
}

func TestKMSUnavailable(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, vault.PurposeCredentials)
	cached := conn("ws_cached", "conn_a", "access_token")
	cold := conn("ws_cold", "conn_b", "access_token")
	envCached := seal(t, f.kr, cached, "cached-token")
	envCold := seal(t, f.kr, cold, "cold-token")

	kr := f.keyring(t, vault.PurposeCredentials) // a replica that has only ws_cached warm
	_, err := kr.Open(ctx, cached, envCached)
	require.NoError(t, err)

	f.kek.down.Store(true)
	wraps, unwraps := f.kek.wraps.Load(), f.kek.unwraps.Load()

	// Cached DEK: both directions keep working without a KMS call.
	got, err := kr.Open(ctx, cached, envCached)
	require.NoError(t, err)
	require.Equal(t, "cached-token", got.Reveal())
	env, err := kr.Seal(ctx, cached, vault.NewSecret("new"))
	require.NoError(t, err)
	_, err = kr.Open(ctx, cached, env)
	require.NoError(t, err)
	require.Equal(t, wraps, f.kek.wraps.Load())
	require.Equal(t, unwraps, f.kek.unwraps.Load())

	requireUnavailable := func(t *testing.T, err error) {
		t.Helper()
		require.ErrorIs(t, err, vault.ErrKMSUnavailable)
		require.ErrorIs(t, err, kms.ErrUnavailable)
		require.NotErrorIs(t, err, vault.ErrDecrypt, "an outage is not a bad ciphertext")
	}
	_, err = kr.Open(ctx, cold, envCold)
	requireUnavailable(t, err)
	_, err = kr.Seal(ctx, cold, vault.NewSecret("x"))
	requireUnavailable(t, err)
	_, err = kr.Seal(ctx, conn("ws_new", "conn_c", "access_token"), vault.NewSecret("x"))
	requireUnavailable(t, err) // a new workspace cannot wrap its first DEK
	_, err = kr.GenerateDEK(ctx, "ws_new")
	requireUnavailable(t, err)
	requireUnavailable(t, kr.Ping(ctx))
	_, err = f.store.ActiveDEK(ctx, "ws_new", vault.PurposeCredentials)
	require.ErrorIs(t, err, vault.ErrNotFound, "nothing was stored while the KMS was down")

	f.kek.down.Store(false)
	require.NoError(t, kr.Ping(ctx))
	got, err = kr.Open(ctx, cold, envCold)
	require.NoError(t, err, "a failed unwrap is not cached")
	require.Equal(t, "cold-token", got.Reveal())
}

func TestColdCacheUnwrapsOncePerDEK(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials)
	const workspaces = 4
	envs := make([][]byte, workspaces)
	for w := range workspaces {
		envs[w] = seal(t, f.kr, conn(fmt.Sprintf("ws_%d", w), "conn", "access_token"), fmt.Sprintf("tok-%d", w))
	}
	f.kek.unwraps.Store(0)
	f.kek.unwrapDelay = 20 * time.Millisecond // widen the window in which misses overlap

	kr := f.keyring(t, vault.PurposeCredentials) // cold
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Go(func() {
			<-start
			w := g % workspaces
			b := conn(fmt.Sprintf("ws_%d", w), "conn", "access_token")
			if g%2 == 0 {
				got, err := kr.Open(context.Background(), b, envs[w])
				if err == nil && got.Reveal() != fmt.Sprintf("tok-%d", w) {
					err = fmt.Errorf("goroutine %d opened the wrong value", g)
				}
				errs <- err
				return
			}
			env, err := kr.Seal(context.Background(), b, vault.NewSecret("x"))
			if err == nil {
				_, err = kr.Open(context.Background(), b, env)
			}
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.EqualValues(t, workspaces, f.kek.unwraps.Load(), "exactly one unwrap per DEK")
	require.Equal(t, workspaces, vault.CacheLen(kr))
}

func TestCanceledWaiterDoesNotFailOthers(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials)
	b := conn("ws_1", "conn", "access_token")
	env := seal(t, f.kr, b, "tok")
	f.kek.unwrapDelay = 100 * time.Millisecond
	kr := f.keyring(t, vault.PurposeCredentials)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := kr.Open(ctx, b, env)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond) // the first caller starts the shared load
	cancel()
	got, err := kr.Open(context.Background(), b, env)
	require.NoError(t, err)
	require.Equal(t, "tok", got.Reveal())
	require.ErrorIs(t, <-done, context.Canceled)
	require.EqualValues(t, 1, f.kek.unwraps.Load())
}

func TestCacheTTLExpiryZeroesKey(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials, vault.WithCacheTTL(time.Minute))
	b := conn("ws_1", "conn", "access_token")
	env := seal(t, f.kr, b, "tok")
	e, err := vault.ParseEnvelope(env)
	require.NoError(t, err)
	key := vault.CachedKey(f.kr, e.DEKID)
	require.Len(t, key, 32)
	require.NotEqual(t, make([]byte, 32), key)
	f.kek.unwraps.Store(0)

	f.clock.Advance(59 * time.Second)
	_, err = f.kr.Open(t.Context(), b, env)
	require.NoError(t, err)
	require.EqualValues(t, 0, f.kek.unwraps.Load(), "still fresh")

	f.clock.Advance(2 * time.Second)
	got, err := f.kr.Open(t.Context(), b, env)
	require.NoError(t, err)
	require.Equal(t, "tok", got.Reveal())
	require.EqualValues(t, 1, f.kek.unwraps.Load(), "expired: unwrapped again")
	require.Equal(t, make([]byte, 32), key, "the expired key was zeroed")
	fresh := vault.CachedKey(f.kr, e.DEKID)
	require.NotEqual(t, make([]byte, 32), fresh)

	// An expired entry of an idle workspace is zeroed by the periodic sweep that any
	// later cache access runs, not only when its own workspace comes back.
	seal(t, f.kr, conn("ws_2", "conn", "access_token"), "other")
	f.clock.Advance(2 * time.Minute)
	seal(t, f.kr, conn("ws_3", "conn", "access_token"), "third")
	require.Equal(t, make([]byte, 32), fresh)
	require.Equal(t, 1, vault.CacheLen(f.kr), "only ws_3's DEK is left")
}

func TestCacheSizeEvictsLeastRecentlyUsed(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials, vault.WithCacheSize(2))
	a, b, c := conn("ws_a", "o", "f"), conn("ws_b", "o", "f"), conn("ws_c", "o", "f")
	envA := seal(t, f.kr, a, "a")
	f.clock.Advance(time.Second)
	envB := seal(t, f.kr, b, "b")
	idOf := func(env []byte) string { e, err := vault.ParseEnvelope(env); require.NoError(t, err); return e.DEKID }
	keyA, keyB := vault.CachedKey(f.kr, idOf(envA)), vault.CachedKey(f.kr, idOf(envB))
	f.clock.Advance(time.Second)
	_, err := f.kr.Open(t.Context(), a, envA) // a is now the most recently used
	require.NoError(t, err)
	f.clock.Advance(time.Second)
	seal(t, f.kr, c, "c")

	require.Equal(t, 2, vault.CacheLen(f.kr))
	require.Equal(t, make([]byte, 32), keyB, "b was least recently used: evicted and zeroed")
	require.Nil(t, vault.CachedKey(f.kr, idOf(envB)))
	require.NotEqual(t, make([]byte, 32), keyA)
	require.Equal(t, "", vault.ActiveDEKID(f.kr, "ws_b"), "its active mapping went with it")
	require.Equal(t, idOf(envA), vault.ActiveDEKID(f.kr, "ws_a"))
}

func TestForgetDropsKeys(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, vault.PurposeCredentials)
	gone, kept := conn("ws_gone", "o", "f"), conn("ws_kept", "o", "f")
	envGone, envKept := seal(t, f.kr, gone, "g"), seal(t, f.kr, kept, "k")
	e, err := vault.ParseEnvelope(envGone)
	require.NoError(t, err)
	key := vault.CachedKey(f.kr, e.DEKID)

	f.store.deleteWorkspace("ws_gone") // crypto-shredding: the DEK rows go first
	f.kr.Forget("ws_gone")
	require.Equal(t, make([]byte, 32), key, "zeroed")
	require.Nil(t, vault.CachedKey(f.kr, e.DEKID))
	require.Equal(t, "", vault.ActiveDEKID(f.kr, "ws_gone"))
	_, err = f.kr.Open(ctx, gone, envGone)
	require.ErrorIs(t, err, vault.ErrDecrypt)
	require.ErrorIs(t, err, vault.ErrNotFound)

	got, err := f.kr.Open(ctx, kept, envKept)
	require.NoError(t, err)
	require.Equal(t, "k", got.Reveal())
}

// A load that was already unwrapping when Forget ran must not put the key back.
func TestForgetDuringALoadIsNotUndone(t *testing.T) {
	f := newFixture(t, vault.PurposeCredentials)
	b := conn("ws_1", "conn", "access_token")
	env := seal(t, f.kr, b, "tok")
	kr := f.keyring(t, vault.PurposeCredentials)
	f.kek.onUnwrap = func() { kr.Forget("ws_1") }

	got, err := kr.Open(t.Context(), b, env)
	require.NoError(t, err, "the DEK still exists: this one open may use it")
	require.Equal(t, "tok", got.Reveal())
	require.Equal(t, 0, vault.CacheLen(kr), "but it is not cached")
	require.EqualValues(t, 1, f.kek.unwraps.Load())

	f.kek.onUnwrap = nil
	_, err = kr.Open(t.Context(), b, env)
	require.NoError(t, err)
	require.Equal(t, 1, vault.CacheLen(kr), "a later load caches again")
}

func TestForeignDEKRefused(t *testing.T) {
	ctx := t.Context()
	var logs bytes.Buffer
	f := newFixture(t, vault.PurposeCredentials, vault.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ws1, ws2 := conn("ws_1", "conn", "access_token"), conn("ws_2", "conn", "access_token")
	seal(t, f.kr, ws1, "one")
	env2 := seal(t, f.kr, ws2, "two")

	t.Run("envelope naming another workspace's DEK", func(t *testing.T) {
		logs.Reset()
		_, err := f.kr.Open(ctx, ws1, env2)
		require.ErrorIs(t, err, vault.ErrDecrypt)
		require.Contains(t, logs.String(), "another workspace", "refused by the DEK check, before any decryption")
	})

	t.Run("DEK of another purpose", func(t *testing.T) {
		rec, err := f.store.ActiveDEK(ctx, "ws_1", vault.PurposeCredentials)
		require.NoError(t, err)
		other := cloneRec(rec)
		other.ID, other.Purpose = "dek_clientsecret", vault.PurposeClientSecrets
		f.store.put(other, true)
		e, err := vault.ParseEnvelope(seal(t, f.kr, ws1, "x"))
		require.NoError(t, err)
		forged := vault.Envelope{Version: e.Version, DEKID: other.ID, Nonce: e.Nonce, Ciphertext: e.Ciphertext}.Marshal()
		before := f.kek.unwraps.Load()
		_, err = f.kr.Open(ctx, ws1, forged)
		require.ErrorIs(t, err, vault.ErrDecrypt)
		require.Equal(t, before, f.kek.unwraps.Load(), "refused before asking the KMS")

		cs := f.keyring(t, vault.PurposeClientSecrets)
		_, err = cs.Open(ctx, ws1, seal(t, f.kr, ws1, "y"))
		require.ErrorIs(t, err, vault.ErrDecrypt, "a client-secrets keyring refuses a credentials DEK")
	})

	t.Run("store returning another workspace's DEK as active", func(t *testing.T) {
		rec, err := f.store.ActiveDEK(ctx, "ws_2", vault.PurposeCredentials)
		require.NoError(t, err)
		s := &lyingStore{memStore: f.store, active: rec}
		ring, err := kms.NewRing(f.kek)
		require.NoError(t, err)
		kr, err := vault.NewKeyring(vault.PurposeCredentials, ring, s)
		require.NoError(t, err)
		_, err = kr.Seal(ctx, ws1, vault.NewSecret("x"))
		require.ErrorIs(t, err, vault.ErrDecrypt)
	})
}

type lyingStore struct {
	*memStore
	active vault.DEKRecord
}

func (s *lyingStore) ActiveDEK(context.Context, string, vault.Purpose) (vault.DEKRecord, error) {
	return s.active, nil
}

func TestInsertRaceUsesTheWinner(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, vault.PurposeCredentials)
	rival := f.keyring(t, vault.PurposeCredentials)
	b := conn("ws_1", "conn", "access_token")
	var fired atomic.Bool
	var rivalEnv []byte
	f.store.beforeInsert = func(vault.DEKRecord) {
		// Another replica inserts first. (The rival's own insert comes back through this
		// hook: a sync.Once would deadlock re-entering itself.)
		if fired.CompareAndSwap(false, true) {
			rivalEnv = seal(t, rival, b, "rival")
		}
	}
	env := seal(t, f.kr, b, "mine")
	require.EqualValues(t, 2, f.kek.wraps.Load(), "both generated a DEK")

	e1, err := vault.ParseEnvelope(env)
	require.NoError(t, err)
	e2, err := vault.ParseEnvelope(rivalEnv)
	require.NoError(t, err)
	require.Equal(t, e2.DEKID, e1.DEKID, "the loser seals under the winner's DEK")
	for _, kr := range []*vault.Keyring{f.kr, rival, f.keyring(t, vault.PurposeCredentials)} {
		got, err := kr.Open(ctx, b, env)
		require.NoError(t, err)
		require.Equal(t, "mine", got.Reveal())
	}
}

func TestGenerateDEK(t *testing.T) {
	ctx := t.Context()
	f := newFixture(t, vault.PurposeCredentials)
	rec, err := f.kr.GenerateDEK(ctx, "ws_new")
	require.NoError(t, err)
	require.Regexp(t, regexp.MustCompile(`^dek_[a-z2-7]{26}$`), rec.ID)
	require.Equal(t, "ws_new", rec.WorkspaceID)
	require.Equal(t, vault.PurposeCredentials, rec.Purpose)
	require.Equal(t, f.kek.ID(), rec.KEKID)
	require.Equal(t, f.clock.Now(), rec.CreatedAt)
	require.NotEmpty(t, rec.Wrapped)
	_, err = f.store.DEK(ctx, rec.ID)
	require.ErrorIs(t, err, vault.ErrNotFound, "not persisted by the keyring")

	other, err := f.kr.GenerateDEK(ctx, "ws_new")
	require.NoError(t, err)
	require.NotEqual(t, rec.ID, other.ID)

	// The caller persists it (in its own transaction); first use needs no KMS call.
	require.NoError(t, f.store.InsertDEK(ctx, rec))
	env := seal(t, f.kr, conn("ws_new", "conn", "access_token"), "tok")
	e, err := vault.ParseEnvelope(env)
	require.NoError(t, err)
	require.Equal(t, rec.ID, e.DEKID)
	require.EqualValues(t, 0, f.kek.unwraps.Load())
	require.EqualValues(t, 2, f.kek.wraps.Load())

	// The wrap is bound to (workspace, purpose, id).
	w := kms.WrappedKey{KEKID: rec.KEKID, KEKVersion: rec.KEKVersion, Ciphertext: rec.Wrapped}
	lp := func(parts ...string) []byte {
		var out []byte
		for _, p := range parts {
			out = append(out, byte(len(p)>>24), byte(len(p)>>16), byte(len(p)>>8), byte(len(p)))
			out = append(out, p...)
		}
		return out
	}
	_, err = f.kek.KEK.Unwrap(ctx, w, lp("ws_new", "credentials", rec.ID))
	require.NoError(t, err, "aad = length-prefixed(workspace, purpose, id)")
	for _, aad := range [][]byte{lp("ws_other", "credentials", rec.ID), lp("ws_new", "client_secrets", rec.ID), lp("ws_new", "credentials", other.ID)} {
		_, err = f.kek.KEK.Unwrap(ctx, w, aad)
		require.ErrorIs(t, err, kms.ErrDecrypt)
	}

	_, err = f.kr.GenerateDEK(ctx, "")
	require.Error(t, err)
}

func TestNewKeyringValidates(t *testing.T) {
	ring, err := kms.NewRing(newCountingKEK(t))
	require.NoError(t, err)
	store := newMemStore()
	for name, tc := range map[string]struct {
		p     vault.Purpose
		ring  *kms.Ring
		store vault.DEKStore
		opts  []vault.Option
	}{
		"purpose": {"tokens", ring, store, nil},
		"ring":    {vault.PurposeCredentials, nil, store, nil},
		"store":   {vault.PurposeCredentials, ring, nil, nil},
		"ttl":     {vault.PurposeCredentials, ring, store, []vault.Option{vault.WithCacheTTL(0)}},
		"size":    {vault.PurposeCredentials, ring, store, []vault.Option{vault.WithCacheSize(-1)}},
		"clock":   {vault.PurposeCredentials, ring, store, []vault.Option{vault.WithClock(nil)}},
		"logger":  {vault.PurposeCredentials, ring, store, []vault.Option{vault.WithLogger(nil)}},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := vault.NewKeyring(tc.p, tc.ring, tc.store, tc.opts...)
			require.Error(t, err)
		})
	}
	kr, err := vault.NewKeyring(vault.PurposeClientSecrets, ring, store)
	require.NoError(t, err)
	require.Equal(t, vault.PurposeClientSecrets, kr.Purpose())
	_, err = kr.Seal(t.Context(), vault.Binding{WorkspaceID: "ws"}, vault.NewSecret("x"))
	require.ErrorIs(t, err, vault.ErrInvalidBinding)
	_, err = kr.Open(t.Context(), vault.Binding{WorkspaceID: "ws"}, nil)
	require.ErrorIs(t, err, vault.ErrInvalidBinding)
}

func BenchmarkSeal(b *testing.B) {
	f := newFixture(b, vault.PurposeCredentials)
	bind := conn("ws_1", "conn_0123456789", "access_token")
	tok := vault.NewSecret("gho_16C7e42F292c6912E7710c838347Ae178B4a")
	_, err := f.kr.Seal(context.Background(), bind, tok)
	require.NoError(b, err)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.kr.Seal(ctx, bind, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenCached(b *testing.B) {
	f := newFixture(b, vault.PurposeCredentials)
	bind := conn("ws_1", "conn_0123456789", "access_token")
	env, err := f.kr.Seal(context.Background(), bind, vault.NewSecret("gho_16C7e42F292c6912E7710c838347Ae178B4a"))
	require.NoError(b, err)
	ctx := context.Background()
	unwraps := f.kek.unwraps.Load()
	b.ReportAllocs()
	for b.Loop() {
		s, err := f.kr.Open(ctx, bind, env)
		if err != nil {
			b.Fatal(err)
		}
		s.Wipe()
	}
	if f.kek.unwraps.Load() != unwraps {
		b.Fatal("a cached open called the KMS")
	}
}

func BenchmarkOpenCachedParallel(b *testing.B) {
	f := newFixture(b, vault.PurposeCredentials)
	bind := conn("ws_1", "conn_0123456789", "access_token")
	env, err := f.kr.Seal(context.Background(), bind, vault.NewSecret("gho_16C7e42F292c6912E7710c838347Ae178B4a"))
	require.NoError(b, err)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.kr.Open(context.Background(), bind, env); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
