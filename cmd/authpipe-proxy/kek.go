package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/vault"
)

// kekRotateCommand: `kek rotate` re-wraps every DEK under the current KEKs
// (AUTHPIPE_KEK_URI and AUTHPIPE_CLIENT_SECRET_KEK_URI), unwrapping with
// AUTHPIPE_KEK_PREVIOUS_URIS. Rotation runs while servers serve, and resumes where a
// killed run stopped.
func kekRotateCommand() *command {
	var purpose string
	var batch, workers int
	return &command{
		path: "kek rotate", usage: "[--purpose P] [--batch-size N] [--workers N]",
		summary: "re-wrap every DEK under the current KEKs (resumable)",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&purpose, "purpose", "all", "credentials, client_secrets or all")
			fs.IntVar(&batch, "batch-size", 200, "DEKs per transaction")
			fs.IntVar(&workers, "workers", 4, "concurrent KMS calls")
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "kek rotate: unexpected argument " + args[0]}
			}
			if batch < 1 || workers < 1 {
				return usageError{msg: "kek rotate: --batch-size and --workers must be at least 1"}
			}
			return checkPurpose("kek rotate", purpose)
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			return kekRotate(ctx, a.Admin.KEKs(), purpose, batch, workers, c.stdout, c.stderr)
		},
	}
}

// checkPurpose: the keyring purposes --purpose may name (admin.KEKRotation.Keyrings).
func checkPurpose(path, purpose string) error {
	switch purpose {
	case "all", string(vault.PurposeCredentials), string(vault.PurposeClientSecrets):
		return nil
	}
	return usageError{msg: path + ": --purpose must be credentials, client_secrets or all"}
}

// kekStatusCommand: `kek status` prints the current KEKs, the DEKs by KEK and the saved
// rotation progress. It opens what exists and creates nothing (no key file, no database,
// no migration).
func kekStatusCommand() *command {
	var purpose, out string
	return &command{
		path: "kek status", usage: "[--purpose P] [--output json]", summary: "current KEKs, DEKs by KEK, rotation progress",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&purpose, "purpose", "all", "credentials, client_secrets or all")
			outputFlag(fs, &out)
		},
		args: func(args []string) error {
			if len(args) != 0 {
				return usageError{msg: "kek status: unexpected argument " + args[0]}
			}
			if err := checkOutput("kek status", out); err != nil {
				return err
			}
			return checkPurpose("kek status", purpose)
		},
		run: func(ctx context.Context, c *call) error {
			a, err := c.openExisting(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			keks := a.Admin.KEKs()
			return kekStatus(ctx, keks, keks.Keyrings(purpose), out == "json", c.stdout)
		},
	}
}

func kekRotate(ctx context.Context, keks *admin.KEKRotation, purpose string, batch, workers int, stdout, stderr io.Writer) error {
	keyrings := keks.Keyrings(purpose)
	isTTY := isTerminal(stderr)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var errs []error
	for _, kr := range keyrings {
		start := time.Now()
		rep := newRotationReporter(stderr, isTTY, string(kr.Purpose()), time.Now)
		p, err := keks.Rewrap(ctx, kr, vault.RewrapOptions{BatchSize: batch, Workers: workers, Actor: "cli",
			Logger: log, OnProgress: rep.report})
		rep.finish()
		took := time.Since(start).Round(time.Millisecond)
		if err != nil {
			fmt.Fprintf(stdout, "%s: stopped after %d of %d DEKs (%s): %v\n", kr.Purpose(), p.Done, p.Total, took, err)
			if !errors.Is(err, vault.ErrRewrapIncomplete) {
				fmt.Fprintln(stdout, "  run `authpipe-proxy kek rotate` again to resume")
			}
			errs = append(errs, fmt.Errorf("%s: %w", kr.Purpose(), err))
			continue
		}
		fmt.Fprintf(stdout, "%s: %d DEK(s) under %s (%s)\n", kr.Purpose(), p.Done, p.KEKID, took)
	}
	return errors.Join(errs...)
}

func kekStatus(ctx context.Context, keks *admin.KEKRotation, keyrings []*vault.Keyring, asJSON bool, stdout io.Writer) error {
	for _, kr := range keyrings {
		p, err := keks.Saved(ctx, kr)
		if err != nil {
			return err
		}
		if asJSON {
			if err := printJSONLine(stdout, map[string]any{"purpose": kr.Purpose(), "kek": p.KEKID, "rotation": p.State,
				"done": p.Done, "total": p.Total, "failed": p.Failed}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s\tkek %s\trotation %s\t%d/%d DEKs", kr.Purpose(), p.KEKID, p.State, p.Done, p.Total)
		if p.Failed > 0 {
			fmt.Fprintf(stdout, "\t%d failed", p.Failed)
		}
		fmt.Fprintln(stdout)
	}
	counts, err := keks.DEKsByKEK(ctx)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(counts))
	for id := range counts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if asJSON {
			if err := printJSONLine(stdout, map[string]any{"deks_by_kek": id, "count": counts[id]}); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "deks\t%s\t%d\n", id, counts[id])
	}
	return nil
}

// isTerminal reports whether w is a terminal (progress bars; plain lines otherwise).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// rotationReporter shows a rotation's progress: a bar with rate and ETA on a terminal,
// plain lines (at most one every plainEvery, and the last) otherwise.
type rotationReporter struct {
	w       io.Writer
	purpose string
	now     func() time.Time
	bar     *progressbar.ProgressBar

	start     time.Time
	startDone int64
	last      time.Time
	lastLine  vault.Progress
	seenFirst bool
}

const plainEvery = 2 * time.Second

func newRotationReporter(w io.Writer, tty bool, purpose string, now func() time.Time) *rotationReporter {
	r := &rotationReporter{w: w, purpose: purpose, now: now}
	if tty {
		r.bar = progressbar.NewOptions64(-1,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(purpose),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("DEKs"),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return r
}

func (r *rotationReporter) report(p vault.Progress) {
	now := r.now()
	if !r.seenFirst {
		r.seenFirst, r.start, r.startDone = true, now, p.Done
	}
	r.lastLine = p
	if r.bar != nil {
		if r.bar.GetMax64() != p.Total {
			r.bar.ChangeMax64(max(p.Total, 1))
		}
		_ = r.bar.Set64(p.Done)
		return
	}
	if p.State == vault.RotationDone || now.Sub(r.last) >= plainEvery {
		r.last = now
		r.line(p, now)
	}
}

// line prints: purpose: done/total DEKs (pct), rate, ETA.
func (r *rotationReporter) line(p vault.Progress, now time.Time) {
	pct := 100.0
	if p.Total > 0 {
		pct = 100 * float64(p.Done) / float64(p.Total)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "kek rotate: %s: %d/%d DEKs (%.1f%%)", r.purpose, p.Done, p.Total, pct)
	if el := now.Sub(r.start); el > 0 && p.Done > r.startDone {
		rate := float64(p.Done-r.startDone) / el.Seconds()
		fmt.Fprintf(&b, ", %.0f DEKs/s", rate)
		if p.State != vault.RotationDone && p.Total > p.Done {
			eta := time.Duration(float64(p.Total-p.Done) / rate * float64(time.Second))
			fmt.Fprintf(&b, ", ETA %s", eta.Round(time.Second))
		}
	}
	if p.Failed > 0 {
		fmt.Fprintf(&b, ", %d failed", p.Failed)
	}
	if p.State == vault.RotationDone {
		b.WriteString(", done")
	}
	fmt.Fprintln(r.w, b.String())
}

// finish ends the bar, or prints the last state if the last line was not it.
func (r *rotationReporter) finish() {
	if r.bar != nil {
		if r.lastLine.State == vault.RotationDone {
			_ = r.bar.Finish()
		} else {
			fmt.Fprintln(r.w)
		}
		return
	}
	if r.seenFirst && r.lastLine.State != vault.RotationDone {
		r.line(r.lastLine, r.now())
	}
}
