package admin

import (
	"context"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/vault"
)

// rotationStaleAfter: a rotation saved as running but not updated for this long, and not
// running in this process, was interrupted (its replica died); it resumes on the next
// POST /v1/keys/rotate or `authpipe-proxy kek rotate`.
const rotationStaleAfter = 2 * time.Minute

// KEKRotation runs at most one background KEK rotation per process (POST /v1/keys/rotate):
// both purposes, one after the other, each re-wrapping its DEKs under its keyring's
// current KEK. Running several at once (two replicas, or the CLI and a replica) is safe,
// the store's compare-and-swap sees to that, only wasteful.
type KEKRotation struct {
	s *Service

	mu      sync.Mutex
	running bool
	live    map[vault.Purpose]vault.Progress // progress of the run in this process
	stopped map[vault.Purpose]bool           // purposes the last run here left unfinished
	lastErr string                           // problem code of the last run's failure, or ""
}

func newKEKRotation(s *Service) *KEKRotation {
	return &KEKRotation{s: s, live: map[vault.Purpose]vault.Progress{}, stopped: map[vault.Purpose]bool{}}
}

func (k *KEKRotation) keyrings() []*vault.Keyring { return []*vault.Keyring{k.s.creds, k.s.secrets} }

// Keyrings returns the keyrings of a purpose (credentials or client_secrets), or both
// for "all"; none for anything else.
func (k *KEKRotation) Keyrings(purpose string) []*vault.Keyring {
	var out []*vault.Keyring
	for _, kr := range k.keyrings() {
		if purpose == "all" || purpose == string(kr.Purpose()) {
			out = append(out, kr)
		}
	}
	return out
}

// Rewrap re-wraps every DEK of kr under its current KEK in the calling goroutine (the
// CLI's `kek rotate`), resuming a rotation that stopped; see vault.Keyring.Rewrap.
func (k *KEKRotation) Rewrap(ctx context.Context, kr *vault.Keyring, opts vault.RewrapOptions) (vault.Progress, error) {
	return kr.Rewrap(ctx, k.s.store, opts)
}

// Saved returns the saved progress of kr's rotation to its current KEK.
func (k *KEKRotation) Saved(ctx context.Context, kr *vault.Keyring) (vault.Progress, error) {
	return vault.RotationStatus(ctx, k.s.store, kr.Ring(), kr.Purpose())
}

// DEKsByKEK counts the deployment's DEKs by the id of the KEK that wraps them.
func (k *KEKRotation) DEKsByKEK(ctx context.Context) (map[string]int64, error) {
	return k.s.store.CountDEKsByKEK(ctx)
}

// Start launches a rotation unless one is running here; it reports whether it did.
func (k *KEKRotation) Start(actor string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.running {
		return false
	}
	k.running, k.lastErr = true, ""
	clear(k.live)
	clear(k.stopped)
	go k.run(actor)
	return true
}

// run rotates both purposes. It is detached from the request that started it; a process
// that stops mid-way leaves the progress saved, and the next run resumes it.
func (k *KEKRotation) run(actor string) {
	ctx := context.Background()
	var failure string
	stopped := map[vault.Purpose]bool{}
	for _, kr := range k.keyrings() {
		p, err := k.Rewrap(ctx, kr, vault.RewrapOptions{
			Actor: actor, Logger: k.s.log, Now: k.s.now,
			OnProgress: func(p vault.Progress) {
				k.mu.Lock()
				k.live[p.Purpose] = p
				k.mu.Unlock()
			},
		})
		if err != nil {
			// Keep going with the other purpose: its KMS may well be up.
			failure = problem.From(err).Code
			if errors.Is(err, vault.ErrRewrapIncomplete) {
				failure = "rewrap_incomplete"
			} else {
				stopped[kr.Purpose()] = true
			}
			k.s.log.Error("KEK rotation failed", "purpose", string(kr.Purpose()), "code", failure,
				"done", p.Done, "total", p.Total, "failed", p.Failed, "err", err)
			continue
		}
		k.s.log.Info("KEK rotation done", "purpose", string(kr.Purpose()), "kek_id", p.KEKID, "deks", p.Done)
	}
	k.mu.Lock()
	k.running, k.lastErr = false, failure
	maps.Copy(k.stopped, stopped)
	k.mu.Unlock()
}

// RotationPurpose is the rotation of one purpose's DEKs.
type RotationPurpose struct {
	KEKID       string     `json:"kek_id"`
	State       string     `json:"state"`
	Done        int64      `json:"done"`
	Total       int64      `json:"total"`
	Failed      int64      `json:"failed"`
	Interrupted bool       `json:"interrupted,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	UpdatedAt   *time.Time `json:"updated_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
}

// Rotation is the state of the KEK rotation, both purposes together.
type Rotation struct {
	State  string `json:"state"` // running | done | idle
	Done   int64  `json:"done"`
	Total  int64  `json:"total"`
	Failed int64  `json:"failed"`
	// Interrupted: a rotation stopped before the end (outage, crash); start it again to
	// resume it.
	Interrupted bool                       `json:"interrupted,omitempty"`
	Error       string                     `json:"error,omitempty"` // code of the last run's failure
	Purposes    map[string]RotationPurpose `json:"purposes"`
}

// KEKStatus is the view of GET /v1/keys: the current KEKs, the deployment's DEKs by KEK
// id and the rotation.
type KEKStatus struct {
	KEKID             string           `json:"kek_id"`
	ClientSecretKEKID string           `json:"client_secret_kek_id"`
	DEKs              map[string]int64 `json:"deks"`
	Rotation          Rotation         `json:"rotation"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Status is the live progress of a run in this process, or the saved progress of each
// purpose (a rotation by another replica or the CLI shows too).
func (k *KEKRotation) Status(ctx context.Context) (KEKStatus, error) {
	deks, err := k.DEKsByKEK(ctx)
	if err != nil {
		return KEKStatus{}, err
	}
	k.mu.Lock()
	running, lastErr := k.running, k.lastErr
	live, stopped := maps.Clone(k.live), maps.Clone(k.stopped)
	k.mu.Unlock()

	v := KEKStatus{KEKID: k.s.creds.Ring().Current().ID(), ClientSecretKEKID: k.s.secrets.Ring().Current().ID(), DEKs: deks,
		Rotation: Rotation{State: string(vault.RotationIdle), Error: lastErr, Purposes: map[string]RotationPurpose{}}}
	anyRunning, anyDone := running, false
	for _, kr := range k.keyrings() {
		p, ok := live[kr.Purpose()]
		if !ok || p.KEKID != kr.Ring().Current().ID() {
			if p, err = k.Saved(ctx, kr); err != nil {
				return KEKStatus{}, err
			}
		}
		pv := RotationPurpose{KEKID: p.KEKID, State: string(p.State), Done: p.Done, Total: p.Total, Failed: p.Failed,
			StartedAt: timePtr(p.StartedAt), UpdatedAt: timePtr(p.UpdatedAt), FinishedAt: timePtr(p.FinishedAt)}
		if p.State == vault.RotationRunning && !running &&
			(stopped[kr.Purpose()] || k.s.now().Sub(p.UpdatedAt) > rotationStaleAfter) {
			pv.State, pv.Interrupted = string(vault.RotationIdle), true
			v.Rotation.Interrupted = true
		}
		switch vault.RotationState(pv.State) {
		case vault.RotationRunning:
			anyRunning = true
		case vault.RotationDone:
			anyDone = true
		}
		if pv.State != string(vault.RotationIdle) || pv.Interrupted {
			v.Rotation.Done += pv.Done
			v.Rotation.Total += pv.Total
			v.Rotation.Failed += pv.Failed
		}
		v.Rotation.Purposes[string(kr.Purpose())] = pv
	}
	switch {
	case anyRunning:
		v.Rotation.State = string(vault.RotationRunning)
	case v.Rotation.Interrupted:
		v.Rotation.State = string(vault.RotationIdle)
	case anyDone:
		v.Rotation.State = string(vault.RotationDone)
	}
	return v, nil
}
