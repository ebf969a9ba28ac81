package kms_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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

// calls records what an observer is told, as "op:failure".
type calls struct {
	mu  sync.Mutex
	got []string
}

func (c *calls) observe(op string, took time.Duration, failure string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, op+":"+failure)
}

func (c *calls) count(want string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, g := range c.got {
		if g == want {
			n++
		}
	}
	return n
}

// The observed KEK is a KEK: the whole conformance suite passes through it.
func TestObservedKEKConformance(t *testing.T) {
	var c calls
	kmstest.Run(t, func(t *testing.T) kms.KEK { return kms.Observe(openLocal(t), c.observe) })
	require.Positive(t, c.count("unwrap:"), "the suite's unwraps were observed")
	require.Positive(t, c.count("unwrap:decrypt"), "the suite's tampered unwraps are decrypt failures")
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

func TestObservedKEKFailuresByKind(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind string
	}{
		{fmt.Errorf("throttled: %w", kms.ErrUnavailable), "unavailable"},
		{kms.ErrDecrypt, "decrypt"},
		{kms.ErrUnknownKey, "unknown_key"},
		{kms.ErrConfig, "config"},
		{context.DeadlineExceeded, "canceled"},
		{context.Canceled, "canceled"},
		{errors.New("boom"), "other"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			var c calls
			k := kms.Observe(failingKEK{"local:0011", tc.err}, c.observe)
			require.Equal(t, "local:0011", k.ID())
			_, err := k.Wrap(context.Background(), make([]byte, 32), nil)
			require.ErrorIs(t, err, tc.err, "errors pass through unchanged")
			_, err = k.Unwrap(context.Background(), kms.WrappedKey{KEKID: "local:0011"}, nil)
			require.ErrorIs(t, err, tc.err)
			require.ErrorIs(t, k.Ping(context.Background()), tc.err)
			require.Equal(t, []string{"wrap:" + tc.kind, "unwrap:" + tc.kind, "ping:" + tc.kind}, c.got)
		})
	}
}

func TestObserveNilReturnsTheKEK(t *testing.T) {
	k := failingKEK{"local:1", nil}
	require.Equal(t, kms.KEK(k), kms.Observe(k, nil))
}

func TestObserveRingKeepsEveryKEK(t *testing.T) {
	old, cur := openLocal(t), openLocal(t)
	ring, err := kms.NewRing(cur, old)
	require.NoError(t, err)
	var c calls
	var ids []string
	or := kms.ObserveRing(ring, func(kekID string) kms.KEKObserver { ids = append(ids, kekID); return c.observe })
	t.Cleanup(func() { _ = or.Close() })
	require.ElementsMatch(t, []string{cur.ID(), old.ID()}, ids, "each KEK gets the observer of its own id")
	ctx := context.Background()
	w, err := old.Wrap(ctx, make([]byte, kms.DEKSize), []byte("aad"))
	require.NoError(t, err)
	_, err = or.Unwrap(ctx, w, []byte("aad"))
	require.NoError(t, err, "the previous KEK still unwraps through the observed ring")
	require.True(t, or.Has(old.ID()))
	require.Equal(t, cur.ID(), or.Current().ID())
	require.Equal(t, 1, c.count("unwrap:"))
}
