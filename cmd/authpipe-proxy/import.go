package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/authpipe/authpipe-proxy/admin"
	"github.com/authpipe/authpipe-proxy/internal/problem"
	"github.com/authpipe/authpipe-proxy/oauthflow"
)

// importActor is the actor of the CLI's imports in the audit chain.
const importActor = "cli"

// maxImportLine bounds one line of an import file (two 8 KiB tokens and the rest).
const maxImportLine = 64 << 10

// importStats counts an import run's lines.
type importStats struct {
	lines, imported, already, failed int
}

// importCommand is `authpipe-proxy import [--workspace WS] FILE`: existing OAuth grants,
// one JSON object per line (oauthflow.ImportLine: provider, end_user_id, external_id,
// oauth2), each imported as POST /v1/connections with oauth2 would (oauthflow.Importer:
// validated whole, sealed and bound, audited connection.imported, one transaction per
// line).
//
// Resumable by idempotency, not by a state file: every line must carry external_id (the
// source's id of the grant), unique in the workspace, so a rerun of the same file after an
// interruption skips the lines already stored (counted "already imported") and nothing
// can be stored twice, even when the process died between a commit and any bookkeeping.
// A line that fails is reported on stderr with its number and problem code (and the
// names of the bad fields, never a value) and skipped; the exit status is then 1. A
// failure that is not the line's (database, KMS) stops the run: rerun it once fixed.
func importCommand() *command {
	var ws string
	return &command{
		path: "import", usage: "[--workspace WS] FILE",
		summary: "import existing OAuth grants, one JSON object a line (docs/migration.md); resumable",
		doc: "Each line is {\"provider\",\"end_user_id\",\"external_id\",\"oauth2\":{\"access_token\",\"refresh_token\",\"expires_at\",\"scopes\"}}. " +
			"A bad line is reported (line number and code, never a value) and skipped; run it again to resume: lines whose external_id is stored are skipped. FILE - reads stdin.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&ws, "workspace", admin.DefaultWorkspaceID, "workspace id")
		},
		args: func(args []string) error {
			if len(args) != 1 {
				return usageError{msg: "import: want one FILE (JSON lines; - for stdin)"}
			}
			if args[0] == "-" {
				return nil
			}
			if st, err := os.Stat(args[0]); err != nil || !st.Mode().IsRegular() {
				return usageError{msg: "import: " + args[0] + " is not a readable file"}
			}
			return nil
		},
		run: func(ctx context.Context, c *call) error {
			in, total, err := openImportFile(c.args[0])
			if err != nil {
				return err
			}
			defer in.Close()
			a, err := c.openReady(ctx)
			if err != nil {
				return err
			}
			defer a.Close()
			progress := newProgress(c.stderr, total)
			st, err := importLines(ctx, in, func(l oauthflow.ImportLine) error {
				_, err := a.Importer.Import(ctx, ws, importActor, l.Import())
				return err
			}, c.stderr, progress)
			progress.done(st)
			fmt.Fprintf(c.stdout, "import: %d line(s): %d imported, %d already imported, %d failed (workspace %s)\n",
				st.lines, st.imported, st.already, st.failed, ws)
			if err != nil {
				return fmt.Errorf("import stopped after line %d (rerun to resume): %w", st.lines, err)
			}
			if st.failed > 0 {
				return fmt.Errorf("import: %d line(s) failed and were skipped", st.failed)
			}
			return nil
		},
	}
}

// openImportFile opens name ("-": stdin) and counts its lines for the progress bar (0 for
// stdin: unknown).
func openImportFile(name string) (io.ReadCloser, int, error) {
	if name == "-" {
		return io.NopCloser(os.Stdin), 0, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, 0, usageError{msg: "import: " + err.Error()}
	}
	n, err := countLines(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, n, nil
}

func countLines(r io.Reader) (int, error) {
	buf := make([]byte, 64<<10)
	n, last := 0, byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += bytes.Count(buf[:k], []byte{'\n'})
			last = buf[k-1]
		}
		if errors.Is(err, io.EOF) {
			if last != '\n' {
				n++
			}
			return n, nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// importLines reads JSON lines from r and imports each with do. Blank lines and lines
// starting with # are skipped (not counted). A line's own failure (a problem of status
// below 500) is reported and counted; any other error stops the run.
func importLines(ctx context.Context, r io.Reader, do func(oauthflow.ImportLine) error, stderr io.Writer, p *progress) (importStats, error) {
	var st importStats
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxImportLine)
	no := 0
	for sc.Scan() {
		no++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 || raw[0] == '#' {
			continue
		}
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.lines++
		err := importLine(raw, do)
		var pr *problem.Problem
		switch {
		case err == nil:
			st.imported++
		case errors.As(err, &pr) && pr.Code == problem.ErrAlreadyImported.Code:
			st.already++
		case errors.As(err, &pr) && pr.Status < 500:
			st.failed++
			p.clear()
			fmt.Fprintf(stderr, "line %d: %s%s\n", no, pr.Code, fieldNames(pr))
		default:
			return st, err
		}
		p.update(no, st)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return st, fmt.Errorf("line %d is longer than %d bytes", no+1, maxImportLine)
		}
		return st, err
	}
	return st, nil
}

// importLine decodes one line strictly (unknown fields refused) and imports it. A line
// that is not a JSON object of that shape is invalid_request; the decoder's message is
// dropped, since it can quote the line.
func importLine(raw []byte, do func(oauthflow.ImportLine) error) error {
	var l oauthflow.ImportLine
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil || dec.More() {
		return problem.ErrInvalidRequest.WithDetail("not a JSON object of the import's shape")
	}
	if l.ExternalID == "" {
		return problem.ErrInvalidRequest.WithField("external_id", "required by the import command: it makes a rerun skip what is stored")
	}
	return do(l)
}

// fieldNames lists a problem's bad fields, " (a, b)", or "".
func fieldNames(p *problem.Problem) string {
	if len(p.Errors) == 0 {
		return ""
	}
	names := make([]string, 0, len(p.Errors))
	for _, e := range p.Errors {
		names = append(names, e.Field)
	}
	return " (" + strings.Join(names, ", ") + ")"
}

// progress is a bar redrawn in place on a terminal, or a plain line every 1000 lines or
// 5 seconds otherwise (a log file, CI).
type progress struct {
	w     io.Writer
	tty   bool
	total int
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer, total int) *progress {
	p := &progress{w: w, total: total, last: time.Now()}
	if f, ok := w.(*os.File); ok {
		p.tty = term.IsTerminal(int(f.Fd()))
	}
	return p
}

func (p *progress) update(line int, st importStats) {
	if p.tty {
		p.draw(line, st)
		return
	}
	if st.lines%1000 == 0 || time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		fmt.Fprintf(p.w, "import: line %d%s: %d imported, %d already imported, %d failed\n", line, p.of(), st.imported, st.already, st.failed)
	}
}

func (p *progress) of() string {
	if p.total == 0 {
		return ""
	}
	return fmt.Sprintf(" of %d", p.total)
}

func (p *progress) draw(line int, st importStats) {
	const width = 30
	bar := strings.Repeat("?", width)
	if p.total > 0 {
		n := min(width, line*width/p.total)
		bar = strings.Repeat("#", n) + strings.Repeat(".", width-n)
	}
	fmt.Fprintf(p.w, "\r[%s] %d%s  imported %d  already %d  failed %d", bar, line, p.of(), st.imported, st.already, st.failed)
	p.drawn = true
}

// clear ends the bar's line before a report is printed.
func (p *progress) clear() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}

func (p *progress) done(importStats) { p.clear() }
