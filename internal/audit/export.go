package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// An export is one workspace's chain written so that it verifies without the server or its
// database (docs/formats.md, "Audit export file"): JSON lines — a header, the events in seq
// order, and a checkpoint of the head signed at export.

// ExportFormat names the export's version in its header.
const ExportFormat = "authpipe.audit.export.v1"

// ExportEvent is an Event as an export (and the test vectors) write it.
type ExportEvent struct {
	ID           string `json:"id"`
	WorkspaceID  string `json:"workspace_id"`
	Seq          int64  `json:"seq"`
	At           string `json:"at"` // RFC 3339 UTC, as hashed
	Type         string `json:"type"`
	Actor        string `json:"actor"`
	ConnectionID string `json:"connection_id"`
	Outcome      string `json:"outcome"`
	ErrorCode    string `json:"error_code"`
	Data         string `json:"data"`
	PrevHash     string `json:"prev_hash"`
	Hash         string `json:"hash"`
}

// ExportOf is e as an export writes it.
func ExportOf(e Event) ExportEvent {
	return ExportEvent{ID: e.ID, WorkspaceID: e.WorkspaceID, Seq: e.Seq, At: e.At.UTC().Format(time.RFC3339Nano), Type: e.Type,
		Actor: e.Actor, ConnectionID: e.ConnectionID, Outcome: e.Outcome, ErrorCode: e.ErrorCode, Data: e.Data,
		PrevHash: e.PrevHash, Hash: e.Hash}
}

// Event is the exported event back; a malformed time is an error.
func (x ExportEvent) Event() (Event, error) {
	at, err := time.Parse(time.RFC3339Nano, x.At)
	if err != nil {
		return Event{}, fmt.Errorf("audit: event %s: bad time: %w", x.ID, err)
	}
	return Event{ID: x.ID, WorkspaceID: x.WorkspaceID, Seq: x.Seq, At: at, Type: x.Type, Actor: x.Actor,
		ConnectionID: x.ConnectionID, Outcome: x.Outcome, ErrorCode: x.ErrorCode, Data: x.Data, PrevHash: x.PrevHash, Hash: x.Hash}, nil
}

// ExportPoint is a position on a chain.
type ExportPoint struct {
	Seq     int64  `json:"seq"`
	Hash    string `json:"hash"`
	EventID string `json:"event_id,omitempty"`
}

// ExportHeader is an export's first line.
type ExportHeader struct {
	Format      string      `json:"format"`
	WorkspaceID string      `json:"workspace_id"`
	ExportedAt  time.Time   `json:"exported_at"`
	Start       ExportPoint `json:"start"` // genesis (seq 0) or the retained anchor of a pruned chain
	Head        ExportPoint `json:"head"`
	// StartCheckpoint is the signed anchor of a pruned chain (Start.Seq > 0): without it,
	// events cut from the front of an export would go unnoticed.
	StartCheckpoint *Checkpoint `json:"start_checkpoint,omitempty"`
}

// ExportWriter writes an export: the header, then Event for each event in seq order, then
// Close with the signed checkpoint of the head.
type ExportWriter struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewExportWriter writes h to w.
func NewExportWriter(w io.Writer, h ExportHeader) (*ExportWriter, error) {
	h.Format = ExportFormat
	bw := bufio.NewWriter(w)
	x := &ExportWriter{w: bw, enc: json.NewEncoder(bw)}
	return x, x.enc.Encode(h)
}

// Event writes one event.
func (x *ExportWriter) Event(e Event) error { return x.enc.Encode(ExportOf(e)) }

// Close writes the checkpoint line and flushes.
func (x *ExportWriter) Close(cp Checkpoint) error {
	if err := x.enc.Encode(struct {
		Checkpoint Checkpoint `json:"checkpoint"`
	}{cp}); err != nil {
		return err
	}
	return x.w.Flush()
}

// ExportResult is what an offline verification found.
type ExportResult struct {
	WorkspaceID string
	OK          bool
	Events      int
	Head        string
	FirstBad    string // the first event that does not follow, or the head's event id
	Reason      string
}

// ErrExportFormat: the file is not an export (a line that does not parse, a missing
// header or checkpoint).
var ErrExportFormat = errors.New("audit: not an audit export")

// VerifyExport checks an export without any database: the chain from its start (genesis,
// or a retained anchor, which the export's checkpoint key must have signed on the way), to
// the recorded head, and the final checkpoint — signed by one of trusted (at least one
// key must be given: the key inside a checkpoint proves nothing by itself) and naming that
// same head. A file edited, truncated or re-chained after export fails.
func VerifyExport(r io.Reader, trusted ...string) (ExportResult, error) {
	if len(trusted) == 0 {
		return ExportResult{}, errors.New("audit: verifying an export needs the checkpoint key id to trust")
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var hdr ExportHeader
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &hdr) != nil || hdr.Format != ExportFormat {
		return ExportResult{}, fmt.Errorf("%w: line 1 is not an %s header", ErrExportFormat, ExportFormat)
	}
	if hdr.Start.Seq == 0 && hdr.Start.Hash != GenesisHash {
		return ExportResult{}, fmt.Errorf("%w: a chain from seq 0 starts at the genesis hash", ErrExportFormat)
	}
	res := ExportResult{WorkspaceID: hdr.WorkspaceID}
	if hdr.Start.Seq > 0 {
		sc := hdr.StartCheckpoint
		if sc == nil || sc.Verify(trusted...) != nil || sc.WorkspaceID != hdr.WorkspaceID || sc.Seq != hdr.Start.Seq || !equal(sc.Hash, hdr.Start.Hash) {
			res.FirstBad, res.Reason = hdr.Start.EventID, "the start of the pruned chain is not a checkpoint signed by the trusted key"
			return res, nil
		}
	}
	v := NewVerifierFrom(hdr.Start.Seq, hdr.Start.Hash)
	var cp *Checkpoint
	for line := 2; sc.Scan(); line++ {
		if cp != nil {
			return res, fmt.Errorf("%w: line %d follows the checkpoint", ErrExportFormat, line)
		}
		var probe struct {
			Checkpoint *Checkpoint `json:"checkpoint"`
		}
		if err := json.Unmarshal(sc.Bytes(), &probe); err != nil {
			return res, fmt.Errorf("%w: line %d", ErrExportFormat, line)
		}
		if probe.Checkpoint != nil {
			cp = probe.Checkpoint
			continue
		}
		var x ExportEvent
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			return res, fmt.Errorf("%w: line %d", ErrExportFormat, line)
		}
		e, err := x.Event()
		if err != nil {
			return res, fmt.Errorf("%w: line %d: %w", ErrExportFormat, line, err)
		}
		if e.WorkspaceID != hdr.WorkspaceID {
			res.FirstBad, res.Reason = e.ID, "an event of another workspace"
			return res, nil
		}
		v.Add(e)
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("audit: read export: %w", err)
	}
	if cp == nil {
		return res, fmt.Errorf("%w: no checkpoint line (the file was cut short)", ErrExportFormat)
	}
	v.CheckHead(hdr.Head.Seq, hdr.Head.Hash, hdr.Head.EventID)
	ok, n, head, bad := v.Result()
	res.Events, res.Head, res.FirstBad = n, head, bad
	switch {
	case !ok:
		res.Reason = "the chain does not link, or ends before its recorded head"
	case cp.Verify(trusted...) != nil:
		res.FirstBad, res.Reason = hdr.Head.EventID, "the export's checkpoint does not verify under the trusted key: "+cp.Verify(trusted...).Error()
	case cp.WorkspaceID != hdr.WorkspaceID || cp.Seq != hdr.Head.Seq || !equal(cp.Hash, hdr.Head.Hash):
		res.FirstBad, res.Reason = hdr.Head.EventID, "the export's checkpoint names another head"
	default:
		res.OK = true
	}
	return res, nil
}
