// Package audit defines the tamper-evident audit chain: the event, its canonical encoding,
// and the SHA-256 hash that links each event to the one before it in its workspace's chain.
// Persistence (appending in the caller's transaction) lives in vault/store; this package is
// pure so that verification can be reasoned about on its own.
package audit

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"time"
)

// Event types.
const (
	ConnectionCreated      = "connection.created"
	ConnectionDisconnected = "connection.disconnected"
	ConnectionErased       = "connection.erased"
	ConnectionReconnected  = "connection.reconnected"
	// An OAuth app's secret rotation (API.md "Providers"): a next client secret set, promoted
	// to current, or dropped.
	ProviderClientSecretNext        = "provider.client_secret_next_set"
	ProviderClientSecretPromoted    = "provider.client_secret_promoted"
	ProviderClientSecretNextDropped = "provider.client_secret_next_dropped"
	ConnectionExpiring              = "connection.expiring"     // its refresh token ends within AUTHPIPE_REFRESH_TOKEN_EXPIRING_LEAD
	ConnectionImported              = "connection.imported"     // an existing OAuth grant brought in (POST /v1/connections with oauth2, authpipe-proxy import)
	ConnectionNeedsReauth           = "connection.needs_reauth" // put into needs_reauth by a provider change; ErrorCode is the reason
	TokenRefresh                    = "token.refresh"
	TokenRead                       = "token.read"    // aggregated: Data is ReadData (reads.go)
	ProxyRequest                    = "proxy.request" // a forwarded request, aggregated like token.read
	ProviderUpdated                 = "provider.updated"
	ProviderDeleted                 = "provider.deleted"
	APIKeyCreated                   = "api_key.created"
	APIKeyRevoked                   = "api_key.revoked"
	WorkspaceCreated                = "workspace.created"
	WorkspaceUpdated                = "workspace.updated"
	KEKRotated                      = "kek.rotated"
	// BindingRefused: a credential-bearing call was not made because its destination's
	// origin is not one the credential is bound to (vault.CheckOrigin).
	BindingRefused = "credential.binding_refused"
	// Incident response (issue 23): a workspace frozen or unfrozen, a connection's access
	// token rotated by an incident (Data: incident, revoked, refreshed), and a finding of the
	// anomaly detection (Data: kind, counts; never a credential).
	WorkspaceFrozen   = "workspace.frozen"
	WorkspaceUnfrozen = "workspace.unfrozen"
	ConnectionRotated = "connection.rotated"
	SecurityAnomaly   = "security.anomaly"
)

// TokenNarrowed: a GitHub App token minted for one read, limited to the repositories and
// permissions asked (Data: provider, repositories, permissions, granted, expires_at); one
// event per read, never aggregated, so that what each token could do stays on record.
const TokenNarrowed = "token.narrowed"

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
)

// GenesisHash is the prev_hash of the first event of every chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Event is one entry of a workspace's chain. Fields carry identifiers and codes only:
// never a secret, never a provider's response text.
type Event struct {
	ID           string
	WorkspaceID  string
	Seq          int64
	At           time.Time
	Type         string
	Actor        string
	ConnectionID string
	Outcome      string
	ErrorCode    string
	Data         string // small JSON object of non-secret metadata, or ""
	PrevHash     string
	Hash         string
}

// Normalize truncates At to microseconds in UTC, the precision both stores keep, so
// that a hash computed before insert matches the one recomputed after reading back.
func (e *Event) Normalize() { e.At = e.At.UTC().Truncate(time.Microsecond) }

// ComputeHash returns the hex SHA-256 of the event's canonical encoding, which includes
// PrevHash and every field but Hash: each field length-prefixed, so no two different
// events encode the same.
func ComputeHash(e Event) string {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("authpipe.audit.v1")
	field(e.PrevHash)
	field(e.ID)
	field(e.WorkspaceID)
	binary.BigEndian.PutUint64(n[:], uint64(e.Seq))
	h.Write(n[:])
	field(e.At.UTC().Format(time.RFC3339Nano))
	field(e.Type)
	field(e.Actor)
	field(e.ConnectionID)
	field(e.Outcome)
	field(e.ErrorCode)
	field(e.Data)
	return hex.EncodeToString(h.Sum(nil))
}

// Link sets e's Seq, PrevHash and Hash to follow the given head.
func Link(e *Event, headSeq int64, headHash string) {
	e.Normalize()
	e.Seq = headSeq + 1
	e.PrevHash = headHash
	e.Hash = ComputeHash(*e)
}

// Verifier checks a chain event by event, in sequence order.
type Verifier struct {
	seq      int64
	head     string
	count    int
	firstBad string
}

// NewVerifier starts a verification at the genesis of a chain.
func NewVerifier() *Verifier { return &Verifier{head: GenesisHash} }

// NewVerifierFrom starts from a trusted point (seq, hash), e.g. a retained checkpoint.
func NewVerifierFrom(seq int64, hash string) *Verifier { return &Verifier{seq: seq, head: hash} }

// Add checks the next event. It returns false once the chain is broken; FirstBad names
// the first event that does not follow.
func (v *Verifier) Add(e Event) bool {
	if v.firstBad != "" {
		return false
	}
	ok := e.Seq == v.seq+1 && equal(e.PrevHash, v.head) && equal(ComputeHash(e), e.Hash)
	if !ok {
		v.firstBad = e.ID
		return false
	}
	v.seq, v.head = e.Seq, e.Hash
	v.count++
	return true
}

// CheckHead compares the end of the chain with a recorded head (audit_heads, or a signed
// checkpoint). A chain that ends before the head lost its tail.
// headID names the head event, reported as the first bad one when it is gone.
func (v *Verifier) CheckHead(seq int64, hash, headID string) bool {
	if v.firstBad != "" {
		return false
	}
	if v.seq != seq || !equal(v.head, hash) {
		v.firstBad = headID
		return false
	}
	return true
}

// Result reports the outcome.
func (v *Verifier) Result() (ok bool, events int, head string, firstBad string) {
	return v.firstBad == "", v.count, v.head, v.firstBad
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
