package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/kms"
)

// KEK rotation: re-wrap every DEK of a purpose under the ring's current KEK. Only the
// wrapped DEK changes; the DEK itself, and therefore every sealed value, stays as it is,
// so rotation never re-encrypts a credential and runs while reads and writes go on:
//
//   - DEKs are read in batches in id order after a cursor, skipping those the current
//     KEK already wraps, so a second run, or a run after a crash, does only what is left.
//   - Each DEK is unwrapped with the ring (the previous KEKs of AUTHPIPE_KEK_PREVIOUS_URIS
//     unwrap) and wrapped by the current KEK with the same associated data the keyring
//     uses (WrapAAD), so the keyring opens it unchanged.
//   - The store swaps each wrapped key with a compare-and-swap on (id, kek id, wrapped)
//     and appends kek.rotated to each affected workspace's audit chain in the same
//     transaction: a DEK changed or deleted meanwhile is never overwritten.
//   - Progress (state, counters, cursor) is saved after every batch; a run that finds a
//     running rotation to the same KEK resumes at its cursor, then sweeps once more from
//     the start for DEKs that an old replica may have inserted behind it.

// RotationState is the state of a purpose's rotation.
type RotationState string

const (
	// RotationIdle: no rotation to the current KEK has been recorded.
	RotationIdle RotationState = "idle"
	// RotationRunning: a rotation is under way (or was killed and will resume).
	RotationRunning RotationState = "running"
	// RotationDone: every DEK that could be re-wrapped is under the KEK.
	RotationDone RotationState = "done"
)

// Progress is the persisted state of one purpose's rotation.
type Progress struct {
	Purpose Purpose
	// KEKID is the KEK the rotation moves DEKs to (the ring's current one).
	KEKID string
	State RotationState
	// Done counts DEKs that are settled under KEKID (re-wrapped by this rotation, or
	// found already re-wrapped or deleted by someone else); Total is Done plus what was
	// left when the run (or its resumption) began; Failed counts DEKs that cannot be
	// unwrapped at all (unknown KEK, tampered): they are left as they are.
	Done, Total, Failed int64
	// Cursor is the id of the last DEK of the last finished batch.
	Cursor     string
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time // zero until done
}

// DEKSwap is one compare-and-swap of a wrapped DEK: Old as it was read (id, KEK id and
// wrapped bytes are compared), New the same DEK wrapped by the new KEK.
type DEKSwap struct {
	Old DEKRecord
	New DEKRecord
}

// RewrapStore is what a rotation needs from persistence. vault/store implements it.
type RewrapStore interface {
	DEKStore
	// DEKsToRewrap returns up to limit DEKs of the purpose not wrapped by kekID, with
	// ids greater than afterID, in id order.
	DEKsToRewrap(ctx context.Context, purpose Purpose, kekID, afterID string, limit int) ([]DEKRecord, error)
	// CountDEKsToRewrap counts the DEKs of the purpose not wrapped by kekID.
	CountDEKsToRewrap(ctx context.Context, purpose Purpose, kekID string) (int64, error)
	// SwapWrappedBatch applies each swap whose row is still as in Old, and appends one
	// kek.rotated event (by actor) per workspace that had a DEK swapped, all in one
	// transaction. swapped[i] reports whether swaps[i] was applied.
	SwapWrappedBatch(ctx context.Context, swaps []DEKSwap, actor string) (swapped []bool, err error)
	// RotationProgress returns the saved progress of the purpose, or ErrNotFound.
	RotationProgress(ctx context.Context, purpose Purpose) (Progress, error)
	// SaveRotationProgress creates or replaces the purpose's progress.
	SaveRotationProgress(ctx context.Context, p Progress) error
}

// ErrRewrapIncomplete: the rotation finished, but some DEKs could not be unwrapped (their
// KEK is not configured, or they were tampered with) and stay under their old KEK.
var ErrRewrapIncomplete = errors.New("vault: some DEKs could not be re-wrapped")

// RewrapOptions tune a rotation. The zero value is usable.
type RewrapOptions struct {
	// BatchSize is the number of DEKs per store transaction (default 200).
	BatchSize int
	// Workers is the number of concurrent KMS calls (default 4): a remote KMS answers in
	// milliseconds, so a few calls in flight multiply throughput.
	Workers int
	// Actor is recorded in the kek.rotated events (default "system").
	Actor string
	// OnProgress, when set, is called after each batch and at the end, from the
	// goroutine running Rewrap.
	OnProgress func(Progress)
	// Logger receives the ids of DEKs that cannot be re-wrapped (default: discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

const (
	defaultRewrapBatch   = 200
	defaultRewrapWorkers = 4
	maxRewrapBatch       = 10_000
	maxRewrapWorkers     = 64
	// maxRewrapPasses bounds the sweeps from the start: each one exists to catch DEKs
	// inserted under an old KEK (by a replica not yet restarted) during the one before.
	maxRewrapPasses = 5
)

func (o *RewrapOptions) validate() error {
	if o.BatchSize == 0 {
		o.BatchSize = defaultRewrapBatch
	}
	if o.Workers == 0 {
		o.Workers = defaultRewrapWorkers
	}
	if o.Actor == "" {
		o.Actor = "system"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var errs []error
	if o.BatchSize < 1 || o.BatchSize > maxRewrapBatch {
		errs = append(errs, fmt.Errorf("batch size must be 1..%d, got %d", maxRewrapBatch, o.BatchSize))
	}
	if o.Workers < 1 || o.Workers > maxRewrapWorkers {
		errs = append(errs, fmt.Errorf("workers must be 1..%d, got %d", maxRewrapWorkers, o.Workers))
	}
	return errors.Join(errs...)
}

// Ring returns the keyring's KEK ring (rotation re-wraps under its current KEK).
func (k *Keyring) Ring() *kms.Ring { return k.ring }

// Rewrap re-wraps the keyring's purpose's DEKs under its current KEK; see Rewrap.
func (k *Keyring) Rewrap(ctx context.Context, store RewrapStore, opts RewrapOptions) (Progress, error) {
	return Rewrap(ctx, store, k.ring, k.purpose, opts)
}

// Rewrap re-wraps every DEK of the purpose that the ring's current KEK does not wrap yet,
// resuming a rotation to the same KEK that was interrupted. It returns the final
// progress. A KMS outage stops it with ErrKMSUnavailable and a cancelled ctx with ctx's
// error, both resumable by running it again; DEKs that cannot be unwrapped at all are
// skipped, logged and reported with ErrRewrapIncomplete.
func Rewrap(ctx context.Context, store RewrapStore, ring *kms.Ring, purpose Purpose, opts RewrapOptions) (Progress, error) {
	if err := opts.validate(); err != nil {
		return Progress{}, fmt.Errorf("vault: rewrap: %w", err)
	}
	if store == nil || ring == nil {
		return Progress{}, errors.New("vault: rewrap: nil store or ring")
	}
	if purpose != PurposeCredentials && purpose != PurposeClientSecrets {
		return Progress{}, fmt.Errorf("vault: rewrap: unknown purpose %q", purpose)
	}
	r := &rewrapper{store: store, ring: ring, target: ring.Current().ID(), opts: opts, failed: map[string]bool{}}
	return r.run(ctx, purpose)
}

type rewrapper struct {
	store  RewrapStore
	ring   *kms.Ring
	target string
	opts   RewrapOptions
	failed map[string]bool // DEK ids that cannot be unwrapped, not retried in this run
	p      Progress
}

func (r *rewrapper) now() time.Time { return r.opts.Now().UTC() }

func (r *rewrapper) run(ctx context.Context, purpose Purpose) (Progress, error) {
	left, err := r.store.CountDEKsToRewrap(ctx, purpose, r.target)
	if err != nil {
		return Progress{}, fmt.Errorf("vault: rewrap: count DEKs: %w", err)
	}
	saved, err := r.store.RotationProgress(ctx, purpose)
	switch {
	case err == nil && saved.State == RotationDone && saved.KEKID == r.target && left == 0:
		return saved, nil // nothing to do: a second run writes nothing
	case err == nil && saved.State == RotationRunning && saved.KEKID == r.target:
		r.p = saved // resume where the interrupted run saved its cursor
		r.p.Total = saved.Done + left
	case err == nil || errors.Is(err, ErrNotFound):
		r.p = Progress{Purpose: purpose, KEKID: r.target, State: RotationRunning, Total: left, StartedAt: r.now()}
	default:
		return Progress{}, fmt.Errorf("vault: rewrap: read progress: %w", err)
	}
	r.p.FinishedAt = time.Time{}
	if err := r.save(ctx); err != nil {
		return r.p, err
	}
	fromStart := r.p.Cursor == ""
	for pass := 0; ; pass++ {
		changed, err := r.pass(ctx, purpose)
		if err != nil {
			return r.p, err
		}
		if fromStart && !changed {
			break // a whole pass from the start found nothing left to do
		}
		if pass+1 >= maxRewrapPasses {
			return r.p, fmt.Errorf("vault: rewrap: DEKs under other KEKs keep appearing after %d passes: "+
				"is a replica still running with an old %s KEK?", maxRewrapPasses, purpose)
		}
		r.p.Cursor, fromStart = "", true
	}
	r.p.State, r.p.Failed, r.p.FinishedAt = RotationDone, int64(len(r.failed)), r.now()
	r.p.Total = max(r.p.Total, r.p.Done+r.p.Failed)
	if err := r.save(ctx); err != nil {
		return r.p, err
	}
	if r.p.Failed > 0 {
		return r.p, fmt.Errorf("%w: %d %s DEK(s) stay under their old KEK (see the log for their ids)",
			ErrRewrapIncomplete, r.p.Failed, purpose)
	}
	return r.p, nil
}

// pass walks the DEKs from the cursor to the end. It reports whether it met any DEK it
// had not given up on (re-wrapped, lost to a concurrent writer, or new).
func (r *rewrapper) pass(ctx context.Context, purpose Purpose) (bool, error) {
	changed := false
	for {
		if err := ctx.Err(); err != nil {
			return changed, fmt.Errorf("vault: rewrap interrupted: %w", err)
		}
		recs, err := r.store.DEKsToRewrap(ctx, purpose, r.target, r.p.Cursor, r.opts.BatchSize)
		if err != nil {
			return changed, fmt.Errorf("vault: rewrap: list DEKs: %w", err)
		}
		if len(recs) == 0 {
			return changed, nil
		}
		swaps, err := r.rewrapBatch(ctx, recs)
		if err != nil {
			return changed, err
		}
		if len(swaps) > 0 {
			changed = true
			ok, err := r.store.SwapWrappedBatch(ctx, swaps, r.opts.Actor)
			if err != nil {
				return changed, fmt.Errorf("vault: rewrap: swap wrapped DEKs: %w", err)
			}
			for i, s := range swaps {
				if ok[i] || r.settledElsewhere(ctx, s.Old) {
					r.p.Done++
				}
			}
		}
		r.p.Cursor = recs[len(recs)-1].ID
		r.p.Failed = int64(len(r.failed))
		r.p.Total = max(r.p.Total, r.p.Done+r.p.Failed)
		if err := r.save(ctx); err != nil {
			return changed, err
		}
	}
}

// settledElsewhere reports, after a lost compare-and-swap, whether the DEK needs nothing
// more: deleted (crypto-shredded) or already under the target KEK. Otherwise it is left
// for the next pass, which reads it afresh.
func (r *rewrapper) settledElsewhere(ctx context.Context, old DEKRecord) bool {
	cur, err := r.store.DEK(ctx, old.ID)
	if errors.Is(err, ErrNotFound) {
		return true
	}
	return err == nil && cur.KEKID == r.target
}

// rewrapBatch unwraps and re-wraps recs with up to opts.Workers KMS calls in flight. A
// KMS outage or a cancelled ctx fails the batch; a DEK that cannot be unwrapped at all is
// logged, remembered and skipped.
func (r *rewrapper) rewrapBatch(ctx context.Context, recs []DEKRecord) ([]DEKSwap, error) {
	out := make([]*DEKSwap, len(recs))
	errs := make([]error, len(recs))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(r.opts.Workers, len(recs)) {
		wg.Go(func() {
			for i := range next {
				out[i], errs[i] = r.rewrapOne(wctx, recs[i])
				if errs[i] != nil && !isPermanent(errs[i]) {
					cancel() // a KMS that is down will not answer the rest either
				}
			}
		})
	}
feed:
	for i := range recs {
		if r.failed[recs[i].ID] {
			continue
		}
		select {
		case next <- i:
		case <-wctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vault: rewrap interrupted: %w", err)
	}
	for i, err := range errs {
		if err != nil && !isPermanent(err) {
			return nil, fmt.Errorf("vault: rewrap DEK %s: %w", recs[i].ID, kmsError(err))
		}
	}
	swaps := make([]DEKSwap, 0, len(recs))
	for i, rec := range recs {
		switch {
		case errs[i] != nil:
			r.failed[rec.ID] = true
			r.opts.Logger.ErrorContext(ctx, "DEK cannot be re-wrapped; it stays under its old KEK",
				"dek_id", rec.ID, "workspace_id", rec.WorkspaceID, "purpose", string(rec.Purpose),
				"kek_id", rec.KEKID, "error", errs[i])
		case out[i] != nil:
			swaps = append(swaps, *out[i])
		}
	}
	return swaps, nil
}

// isPermanent tells a DEK that will never unwrap (unknown KEK, failed authentication,
// wrong size) from a failure worth retrying later (KMS outage, timeout).
func isPermanent(err error) bool {
	return errors.Is(err, kms.ErrUnknownKey) || errors.Is(err, kms.ErrDecrypt) || errors.Is(err, ErrDecrypt)
}

// rewrapOne unwraps rec with whichever KEK of the ring wrapped it and wraps the same key
// under the current KEK, with the keyring's associated data.
func (r *rewrapper) rewrapOne(ctx context.Context, rec DEKRecord) (*DEKSwap, error) {
	aad := WrapAAD(rec.WorkspaceID, rec.Purpose, rec.ID)
	key, err := r.ring.Unwrap(ctx, kms.WrappedKey{KEKID: rec.KEKID, KEKVersion: rec.KEKVersion, Ciphertext: rec.Wrapped}, aad)
	if err != nil {
		return nil, err
	}
	defer clear(key)
	if len(key) != kms.DEKSize {
		return nil, fmt.Errorf("%w: unwrapped DEK has the wrong size", ErrDecrypt)
	}
	w, err := r.ring.Current().Wrap(ctx, key, aad)
	if err != nil {
		return nil, err
	}
	if w.KEKID != r.target {
		return nil, fmt.Errorf("vault: rewrap: current KEK reported id %q, want %q", w.KEKID, r.target)
	}
	n := rec
	n.KEKID, n.KEKVersion, n.Wrapped = w.KEKID, w.KEKVersion, w.Ciphertext
	return &DEKSwap{Old: rec, New: n}, nil
}

func (r *rewrapper) save(ctx context.Context) error {
	r.p.UpdatedAt = r.now()
	if err := r.store.SaveRotationProgress(ctx, r.p); err != nil {
		return fmt.Errorf("vault: rewrap: save progress: %w", err)
	}
	if r.opts.OnProgress != nil {
		r.opts.OnProgress(r.p)
	}
	return nil
}

// RotationStatus reports the purpose's rotation as seen from ring's configuration: the
// saved progress when it is a rotation to the ring's current KEK, RotationIdle
// otherwise (no rotation yet, or one to a KEK that is no longer current).
func RotationStatus(ctx context.Context, store RewrapStore, ring *kms.Ring, purpose Purpose) (Progress, error) {
	target := ring.Current().ID()
	p, err := store.RotationProgress(ctx, purpose)
	switch {
	case errors.Is(err, ErrNotFound):
		return Progress{Purpose: purpose, KEKID: target, State: RotationIdle}, nil
	case err != nil:
		return Progress{}, fmt.Errorf("vault: read rotation progress: %w", err)
	case p.KEKID != target:
		return Progress{Purpose: purpose, KEKID: target, State: RotationIdle}, nil
	}
	return p, nil
}
