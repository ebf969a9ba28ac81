package main

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/kms"
	"github.com/authpipe/authpipe-proxy/kms/local"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// minMeasure: the loops without a store repeat until they have run at least this long,
// so that their rate is not one timer tick's worth of noise.
const minMeasure = 500 * time.Millisecond

// rotationBench measures KEK rotation (vault.Rewrap on the real store) in DEKs/s, per
// backend, against a bare AES-256-GCM wrap loop of the same number of 32-byte keys: the
// least a rotation could cost. For each backend it also measures the KMS part alone
// (unwrap + wrap per DEK, no store), so the store's share shows.
func rotationBench(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("rotation", flag.ContinueOnError)
	n := fs.Int("n", 5000, "DEKs (one workspace each)")
	batch := fs.Int("batch", 200, "DEKs per transaction")
	workers := fs.Int("workers", 4, "concurrent KMS calls")
	dbURL := fs.String("database-url", "", "a THROWAWAY database to use instead of a temporary SQLite file (its deks table is rotated)")
	hsmOnly := fs.Bool("softhsm-required", false, "fail instead of skipping when SoftHSM2 is missing")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 {
		return errors.New("-n must be positive")
	}
	dir, err := os.MkdirTemp("", "authpipe-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	dbDesc := "sqlite (temp file)"
	if *dbURL != "" {
		dbDesc = "the database of -database-url"
	}
	fmt.Fprintf(out, "# %d DEKs, batch %d, workers %d, store: %s\n\n", *n, *batch, *workers, dbDesc)

	results := []result{baselineWrap(*n)}

	type backend struct {
		name     string
		old, new kms.KEK
	}
	var backends []backend
	oldL, err := newLocalKEK()
	if err != nil {
		return err
	}
	newL, err := newLocalKEK()
	if err != nil {
		return err
	}
	backends = append(backends, backend{"local", oldL, newL})
	hsmOld, hsmNew, why, err := softHSMKEKs(ctx, dir)
	switch {
	case err != nil:
		return fmt.Errorf("SoftHSM2: %w", err)
	case why != "" && *hsmOnly:
		return fmt.Errorf("SoftHSM2 required: %s", why)
	case why != "":
		fmt.Fprintf(out, "# !!! SoftHSM2 skipped: %s\n", why)
	default:
		defer hsmOld.Close()
		defer hsmNew.Close()
		backends = append(backends, backend{"pkcs11 (SoftHSM2)", hsmOld, hsmNew})
	}

	for i, b := range backends {
		r, err := kmsOnly(ctx, b.old, b.new, *n, *workers)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		r.name = b.name + ": unwrap+wrap, no store"
		results = append(results, r)

		url := *dbURL
		if url == "" {
			url = "sqlite://" + filepath.Join(dir, fmt.Sprintf("bench-%d.db", i))
		}
		r, err = fullRotation(ctx, url, b.old, b.new, *n, *batch, *workers)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		r.name = b.name + ": rotation"
		results = append(results, r)
	}
	table(out, "DEKs/s", results)
	return nil
}

func newLocalKEK() (kms.KEK, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	return local.New(key)
}

// baselineWrap seals n random 32-byte keys with AES-256-GCM and a fresh nonce each, in
// one goroutine: the floor under any wrap.
func baselineWrap(n int) result {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(block)
	dek := make([]byte, 32)
	aad := []byte("workspace\x00credentials\x00dek_id")
	nonce := make([]byte, gcm.NonceSize())
	var sink byte
	ops := 0
	start := time.Now()
	for ops < n || time.Since(start) < minMeasure {
		_, _ = rand.Read(nonce)
		ct := gcm.Seal(nil, nonce, dek, aad)
		sink ^= ct[0]
		ops++
	}
	d := time.Since(start)
	_ = sink
	return result{name: "baseline: bare AES-256-GCM wrap", ops: int64(ops), d: d, note: "1 goroutine, no KMS, no store"}
}

// kmsOnly unwraps (old) and re-wraps (new) n DEKs with workers goroutines.
func kmsOnly(ctx context.Context, oldK, newK kms.KEK, n, workers int) (result, error) {
	wrapped := make([]kms.WrappedKey, n)
	aads := make([][]byte, n)
	dek := make([]byte, kms.DEKSize)
	for i := range n {
		aads[i] = fmt.Appendf(nil, "ws_%d\x00credentials\x00dek_%d", i, i)
		w, err := oldK.Wrap(ctx, dek, aads[i])
		if err != nil {
			return result{}, err
		}
		wrapped[i] = w
	}
	var ops int64
	start := time.Now()
	for ops < int64(n) || time.Since(start) < minMeasure { // whole passes over the n DEKs
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Go(func() {
				for i := w; i < n; i += workers {
					key, err := oldK.Unwrap(ctx, wrapped[i], aads[i])
					if err == nil {
						_, err = newK.Wrap(ctx, key, aads[i])
					}
					if err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return result{}, err
		}
		ops += int64(n)
	}
	return result{ops: ops, d: time.Since(start), note: fmt.Sprintf("%d goroutines", workers)}, nil
}

// fullRotation seeds n workspaces' DEKs under oldK in the store at url, then times
// vault.Rewrap to newK (compare-and-swap per DEK, kek.rotated per workspace, progress per
// batch) and checks that every DEK moved.
func fullRotation(ctx context.Context, url string, oldK, newK kms.KEK, n, batch, workers int) (result, error) {
	st, err := store.Open(ctx, url)
	if err != nil {
		return result{}, err
	}
	defer st.Close()
	if _, err := st.Migrate(ctx); err != nil {
		return result{}, err
	}
	oldRing, err := kms.NewRing(oldK)
	if err != nil {
		return result{}, err
	}
	kr, err := vault.NewKeyring(vault.PurposeCredentials, oldRing, st)
	if err != nil {
		return result{}, err
	}
	prefix := fmt.Sprintf("ws_bench_%d_", time.Now().UnixNano())
	// The next backend's run must not meet these DEKs (its ring cannot unwrap them).
	defer st.DB().Exec("DELETE FROM deks WHERE workspace_id LIKE ?", prefix+"%")
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := w; i < n; i += 4 {
				rec, err := kr.GenerateDEK(ctx, fmt.Sprintf("%s%07d", prefix, i))
				if err == nil {
					err = st.InsertDEK(ctx, rec)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return result{}, fmt.Errorf("seed: %w", err)
	}
	ring, err := kms.NewRing(newK, oldK)
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	p, err := vault.Rewrap(ctx, st, ring, vault.PurposeCredentials, vault.RewrapOptions{BatchSize: batch, Workers: workers, Actor: "bench"})
	d := time.Since(start)
	if err != nil {
		return result{}, err
	}
	left, err := st.CountDEKsToRewrap(ctx, vault.PurposeCredentials, newK.ID())
	if err != nil {
		return result{}, err
	}
	if left != 0 || p.Done < int64(n) {
		return result{}, fmt.Errorf("rotation left %d DEKs behind (done %d of %d)", left, p.Done, n)
	}
	return result{ops: p.Done, d: d, note: st.Dialect() + ", CAS + audit per DEK"}, nil
}
