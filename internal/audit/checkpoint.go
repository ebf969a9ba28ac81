package audit

// Checkpoints: truncation evidence for the chain.
//
// A chain alone cannot show that its tail was cut off, or that someone with write access
// to the database recomputed every hash after an edit (a "re-chain"): both leave a chain
// that verifies. A checkpoint records a workspace's head (seq, hash) at a moment, signed
// with the deployment's Ed25519 key (RFC 8032) and written outside the database (a file,
// the log, the control plane). Verifying the chain against checkpoints then shows both:
// a checkpoint past the end of the chain means a deleted tail; a checkpoint whose seq is on
// the chain with another hash means the chain was rewritten.

import (
	"bufio"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// Event types of the credential lifecycle and the chain's own upkeep.
const (
	ConnectionRevoked = "connection.revoked" // RFC 7009 revocation at the provider (success or failure)
	ConnectionPurged  = "connection.purged"  // hard-deleted after the retention window
	WorkspaceDeleted  = "workspace.deleted"  // recorded in the default workspace's chain
	AuditPruned       = "audit.pruned"       // events before a signed anchor were deleted
)

// CheckpointVersion is the version of the signed encoding.
const CheckpointVersion = 1

// Checkpoint is a signed statement "workspace W's chain had head (Seq, Hash) at At". It
// carries its public key so that it can be checked offline; KeyID is derived from the key
// (KeyIDOf), so an operator pins a key by its id.
type Checkpoint struct {
	Version     int       `json:"v"`
	WorkspaceID string    `json:"workspace_id"`
	Seq         int64     `json:"seq"`
	Hash        string    `json:"hash"`
	EventID     string    `json:"event_id"`
	At          time.Time `json:"at"`
	KeyID       string    `json:"kid"`
	PublicKey   string    `json:"public_key"` // base64url (no padding) of the 32-byte Ed25519 key
	Signature   string    `json:"sig"`        // base64url (no padding)
}

// message is the signed encoding: every field length-prefixed under a domain label.
func (c Checkpoint) message() []byte {
	var b []byte
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		b = append(b, n[:]...)
		b = append(b, s...)
	}
	field("authpipe.audit.checkpoint.v1")
	binary.BigEndian.PutUint64(n[:], uint64(c.Version))
	b = append(b, n[:]...)
	field(c.WorkspaceID)
	binary.BigEndian.PutUint64(n[:], uint64(c.Seq))
	b = append(b, n[:]...)
	field(c.Hash)
	field(c.EventID)
	field(c.At.UTC().Format(time.RFC3339Nano))
	field(c.KeyID)
	field(c.PublicKey)
	return b
}

// KeyIDOf is the key id of an Ed25519 public key: "ckp_" and the first 16 bytes of its
// SHA-256, base64url.
func KeyIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return "ckp_" + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Signer signs checkpoints with the deployment's key.
type Signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
	kid  string
}

// NewSigner returns a signer from a 32-byte Ed25519 seed (RFC 8032 private key).
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("audit: checkpoint key must be a 32-byte Ed25519 seed")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	return &Signer{priv: priv, pub: pub, kid: KeyIDOf(pub)}, nil
}

// KeyID returns the signer's key id.
func (s *Signer) KeyID() string { return s.kid }

// PublicKey returns the public key.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.pub }

// Sign fills in the version, key and signature of a checkpoint of (ws, seq, hash, eventID, at).
func (s *Signer) Sign(workspaceID string, seq int64, hash, eventID string, at time.Time) Checkpoint {
	c := Checkpoint{Version: CheckpointVersion, WorkspaceID: workspaceID, Seq: seq, Hash: hash, EventID: eventID,
		At: at.UTC().Truncate(time.Microsecond), KeyID: s.kid, PublicKey: base64.RawURLEncoding.EncodeToString(s.pub)}
	c.Signature = base64.RawURLEncoding.EncodeToString(ed25519.Sign(s.priv, c.message()))
	return c
}

// Errors of checkpoint verification.
var (
	ErrBadCheckpoint   = errors.New("audit: checkpoint signature does not verify")
	ErrUntrustedKey    = errors.New("audit: checkpoint signed by a key that is not trusted")
	ErrCheckpointParse = errors.New("audit: malformed checkpoint")
)

// Verify checks the checkpoint's signature with its own public key, that its key id is
// that key's, and, when trusted is not empty, that the key id is one of trusted.
func (c Checkpoint) Verify(trusted ...string) error {
	if c.Version != CheckpointVersion {
		return fmt.Errorf("%w: version %d", ErrCheckpointParse, c.Version)
	}
	pub, err := base64.RawURLEncoding.DecodeString(c.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: public key", ErrCheckpointParse)
	}
	sig, err := base64.RawURLEncoding.DecodeString(c.Signature)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return fmt.Errorf("%w: signature", ErrCheckpointParse)
	}
	if KeyIDOf(pub) != c.KeyID {
		return fmt.Errorf("%w: kid does not match the public key", ErrBadCheckpoint)
	}
	if !ed25519.Verify(pub, c.message(), sig) {
		return ErrBadCheckpoint
	}
	if len(trusted) == 0 {
		return nil
	}
	for _, k := range trusted {
		if equal(k, c.KeyID) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrUntrustedKey, c.KeyID)
}

// Line is the checkpoint as one JSON line (what the file and the log carry).
func (c Checkpoint) Line() []byte {
	b, _ := json.Marshal(c)
	return append(b, '\n')
}

// ReadCheckpoints parses a file of checkpoint lines (blank lines ignored) and verifies
// each. A line that does not parse or verify is an error naming the line: a checkpoint
// file is evidence, and a bad line in it is not skipped silently.
func ReadCheckpoints(r io.Reader, trusted ...string) ([]Checkpoint, error) {
	var out []Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		b := sc.Bytes()
		if len(b) == 0 {
			continue
		}
		var c Checkpoint
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("%w: line %d", ErrCheckpointParse, line)
		}
		if err := c.Verify(trusted...); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: read checkpoints: %w", err)
	}
	return out, nil
}

// ForWorkspace returns the checkpoints of one workspace, by seq.
func ForWorkspace(cps []Checkpoint, workspaceID string) []Checkpoint {
	var out []Checkpoint
	for _, c := range cps {
		if c.WorkspaceID == workspaceID {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out
}

// Witness checks a chain walk against one workspace's checkpoints (sorted by seq, as
// ForWorkspace returns them). Checkpoints before the walk's start (pruned events) are
// checked against the start only when they are at it.
type Witness struct {
	cps      []Checkpoint
	i        int
	firstBad string
	reason   string
}

// NewWitness starts a witness for a walk that begins after (startSeq, startHash): genesis
// (0, GenesisHash) or a retained anchor.
func NewWitness(cps []Checkpoint, startSeq int64, startHash string) *Witness {
	w := &Witness{cps: cps}
	for w.i < len(cps) && cps[w.i].Seq <= startSeq {
		c := cps[w.i]
		if c.Seq == startSeq && !equal(c.Hash, startHash) {
			w.fail(c.EventID, fmt.Sprintf("checkpoint at seq %d does not match the chain's retained start", c.Seq))
		}
		w.i++
	}
	return w
}

func (w *Witness) fail(id, reason string) {
	if w.firstBad == "" {
		w.firstBad, w.reason = id, reason
	}
}

// Observe is called with every event of the walk, in order, after the Verifier accepted it.
func (w *Witness) Observe(e Event) {
	for w.i < len(w.cps) && w.cps[w.i].Seq <= e.Seq {
		c := w.cps[w.i]
		if c.Seq == e.Seq && !equal(c.Hash, e.Hash) {
			w.fail(e.ID, fmt.Sprintf("event at seq %d differs from the signed checkpoint: the chain was rewritten", e.Seq))
		}
		w.i++
	}
}

// Finish reports the outcome once the walk has reached the end of the chain: a checkpoint
// beyond it means events after the chain's end were deleted.
func (w *Witness) Finish() (ok bool, firstBad, reason string) {
	if w.i < len(w.cps) && w.firstBad == "" {
		last := w.cps[len(w.cps)-1]
		w.fail(last.EventID, fmt.Sprintf("a signed checkpoint is at seq %d, beyond the end of the chain: its tail was deleted", last.Seq))
	}
	return w.firstBad == "", w.firstBad, w.reason
}
