// Package kmstest is the conformance suite every kms.KEK backend must pass.
package kmstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/authpipe/authpipe-proxy/kms"
)

// Run runs the suite against the KEK returned by open. open is called once per sub-test
// and the KEK is closed by the suite.
func Run(t *testing.T, open func(t *testing.T) kms.KEK) {
	t.Helper()
	ctx := func(t *testing.T) context.Context {
		// A deadline against hangs, not a speed test: Concurrent64 makes 1,024 calls, which
		// under -race on two busy cores took more than 30 s through the Azure SDK.
		c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		return c
	}
	newKEK := func(t *testing.T) kms.KEK {
		k := open(t)
		t.Cleanup(func() { _ = k.Close() })
		return k
	}

	t.Run("RoundTrip", func(t *testing.T) {
		k := newKEK(t)
		dek, aad := randBytes(t, kms.DEKSize), []byte("ws_1|credentials")
		w, err := k.Wrap(ctx(t), dek, aad)
		if err != nil {
			t.Fatalf("wrap: %v", err)
		}
		if w.KEKID != k.ID() {
			t.Fatalf("wrapped KEKID = %q, want %q", w.KEKID, k.ID())
		}
		if bytes.Contains(w.Ciphertext, dek) {
			t.Fatal("wrapped key contains the plaintext DEK")
		}
		got, err := k.Unwrap(ctx(t), w, aad)
		if err != nil {
			t.Fatalf("unwrap: %v", err)
		}
		if !bytes.Equal(got, dek) {
			t.Fatal("unwrapped DEK differs")
		}
	})

	t.Run("WrapIsRandomized", func(t *testing.T) {
		k := newKEK(t)
		dek, aad := randBytes(t, kms.DEKSize), []byte("aad")
		a, err := k.Wrap(ctx(t), dek, aad)
		if err != nil {
			t.Fatal(err)
		}
		b, err := k.Wrap(ctx(t), dek, aad)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(a.Ciphertext, b.Ciphertext) {
			t.Fatal("two wraps of the same DEK are identical")
		}
	})

	t.Run("WrongAADFails", func(t *testing.T) {
		k := newKEK(t)
		w, err := k.Wrap(ctx(t), randBytes(t, kms.DEKSize), []byte("ws_1|credentials"))
		if err != nil {
			t.Fatal(err)
		}
		for _, aad := range [][]byte{[]byte("ws_2|credentials"), []byte("ws_1|client_secrets"), nil} {
			if _, err := k.Unwrap(ctx(t), w, aad); !errors.Is(err, kms.ErrDecrypt) {
				t.Fatalf("unwrap with aad %q: err = %v, want ErrDecrypt", aad, err)
			}
		}
	})

	t.Run("TamperedFails", func(t *testing.T) {
		k := newKEK(t)
		aad := []byte("aad")
		w, err := k.Wrap(ctx(t), randBytes(t, kms.DEKSize), aad)
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, len(w.Ciphertext) / 2, len(w.Ciphertext) - 1} {
			bad := w
			bad.Ciphertext = bytes.Clone(w.Ciphertext)
			bad.Ciphertext[i] ^= 0x01
			if _, err := k.Unwrap(ctx(t), bad, aad); err == nil {
				t.Fatalf("byte %d flipped: unwrap succeeded", i)
			} else if errors.Is(err, kms.ErrUnavailable) {
				t.Fatalf("byte %d flipped: err = %v, want a decrypt error, not an outage", i, err)
			}
		}
		short := w
		short.Ciphertext = w.Ciphertext[:len(w.Ciphertext)/3]
		if _, err := k.Unwrap(ctx(t), short, aad); err == nil {
			t.Fatal("truncated ciphertext unwrapped")
		}
	})

	t.Run("UnknownKeyIDFails", func(t *testing.T) {
		k := newKEK(t)
		w, err := k.Wrap(ctx(t), randBytes(t, kms.DEKSize), nil)
		if err != nil {
			t.Fatal(err)
		}
		w.KEKID = "no-such-kek:" + k.ID()
		if _, err := k.Unwrap(ctx(t), w, nil); !errors.Is(err, kms.ErrUnknownKey) {
			t.Fatalf("err = %v, want ErrUnknownKey", err)
		}
	})

	t.Run("Ping", func(t *testing.T) {
		k := newKEK(t)
		if err := k.Ping(ctx(t)); err != nil {
			t.Fatalf("ping: %v", err)
		}
	})

	t.Run("Concurrent64", func(t *testing.T) {
		k := newKEK(t)
		const workers, rounds = 64, 8
		c := ctx(t)
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for i := 0; i < workers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := 0; j < rounds; j++ {
					dek := make([]byte, kms.DEKSize)
					_, _ = rand.Read(dek)
					aad := []byte{byte(j)}
					w, err := k.Wrap(c, dek, aad)
					if err != nil {
						errs <- err
						return
					}
					got, err := k.Unwrap(c, w, aad)
					if err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(got, dek) {
						errs <- errors.New("round trip mismatch under concurrency")
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
}

func randBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
