package vectors

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/oauthflow"
	"github.com/authpipe/authpipe-proxy/vault"
)

// Files returns every vector file by name, as it is committed under testdata/vectors.
func Files() map[string][]byte {
	out := map[string][]byte{}
	for name, v := range map[string]any{
		"envelope.json":        Envelope(),
		"wrapped_dek.json":     WrappedDEK(),
		"audit_chain.json":     AuditChain(),
		"checkpoint.json":      Checkpoints(),
		"webhook.json":         Webhooks(),
		"state.json":           States(),
		"session_id.json":      SessionIDs(),
		"browser_binding.json": BrowserBindings(),
		"apikey_hash.json":     APIKeyHashes(),
	} {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			panic(err)
		}
		out[name] = append(b, '\n')
	}
	return out
}

// material derives a fixed test key: SHA-256 of a label.
func material(label string) []byte {
	sum := sha256.Sum256([]byte("authpipe test vector: " + label))
	return sum[:]
}

func hx(b []byte) string { return hex.EncodeToString(b) }

func sha256Of(s string) []byte { sum := sha256.Sum256([]byte(s)); return sum[:] }

func lp(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = binary.BigEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

func gcm(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return a
}

// ---- sealed-field envelope ----

// Binding is a vault.Binding in JSON.
type Binding struct {
	WorkspaceID string   `json:"workspace_id"`
	OwnerID     string   `json:"owner_id"`
	Field       string   `json:"field"`
	Origins     []string `json:"origins"`           // null: not bound to origins
	Context     string   `json:"context,omitempty"` // "": none (docs/formats.md)
}

// Vault returns the vault.Binding.
func (b Binding) Vault() vault.Binding {
	var o vault.Origins
	if b.Origins != nil {
		o = vault.Origins(b.Origins)
	}
	return vault.Binding{WorkspaceID: b.WorkspaceID, OwnerID: b.OwnerID, Field: b.Field, Origins: o, Context: b.Context}
}

// EnvelopeAAD is the associated data of docs/formats.md, written from the specification
// (not with the vault's own encoder, which the test checks against it).
func EnvelopeAAD(header []byte, purpose string, b Binding) []byte {
	aad := lp(header, []byte(b.WorkspaceID), []byte(b.OwnerID), []byte(b.Field), []byte(purpose))
	if b.Context != "" {
		aad = append(aad, lp([]byte("context"), []byte(b.Context))...)
	}
	if b.Origins != nil {
		aad = append(aad, lp([]byte("origins"))...)
		for _, o := range b.Origins {
			aad = append(aad, lp([]byte(o))...)
		}
	}
	return aad
}

// SealedCase is a valid sealed value.
type SealedCase struct {
	Name      string  `json:"name"`
	Purpose   string  `json:"purpose"`
	Binding   Binding `json:"binding"`
	Plaintext string  `json:"plaintext"`
	Nonce     string  `json:"nonce"`
	AAD       string  `json:"aad"`
	Envelope  string  `json:"envelope"`
}

// BadEnvelope is a sealed value a verifier must refuse, and how.
type BadEnvelope struct {
	Name     string  `json:"name"`
	Purpose  string  `json:"purpose"`
	Binding  Binding `json:"binding"`
	Envelope string  `json:"envelope"`
	Error    string  `json:"error"` // "malformed": the parser refuses it; "decrypt": AES-GCM does
}

// EnvelopeFile is envelope.json.
type EnvelopeFile struct {
	Format  string        `json:"format"`
	DEK     string        `json:"dek"`
	DEKID   string        `json:"dek_id"`
	Valid   []SealedCase  `json:"valid"`
	Invalid []BadEnvelope `json:"invalid"`
}

func seal(dek []byte, dekID, purpose string, b Binding, nonce, plaintext []byte) ([]byte, []byte) {
	header := append([]byte{vault.EnvelopeV1, byte(len(dekID))}, dekID...)
	header = append(header, nonce...)
	aad := EnvelopeAAD(header, purpose, b)
	return gcm(dek).Seal(header, nonce, plaintext, aad), aad
}

// Envelope generates envelope.json.
func Envelope() EnvelopeFile {
	dek := material("dek")
	const dekID = "dek_vectors0000000000000001"
	f := EnvelopeFile{Format: "authpipe.vault.envelope.v1", DEK: hx(dek), DEKID: dekID}
	access := Binding{WorkspaceID: "ws_vectors", OwnerID: "conn_vectors", Field: "access_token",
		Origins: []string{"https://api.github.com:443", "https://github.com:443"}}
	secret := Binding{WorkspaceID: "ws_vectors", OwnerID: "prov_vectors", Field: "client_secret",
		Origins: []string{"https://github.com:443"}}
	webhook := Binding{WorkspaceID: "ws_vectors", OwnerID: "ws_vectors", Field: "webhook_secret"}
	minted := Binding{WorkspaceID: "ws_vectors", OwnerID: "conn_vectors", Field: "access_token",
		Origins: []string{"https://api.github.com:443"},
		// "connection_config:" + hex(SHA-256(`{"installation_id":"42"}`))
		Context: "connection_config:" + hx(sha256Of(`{"installation_id":"42"}`))}
	for i, c := range []struct {
		name, purpose string
		b             Binding
		pt            string
	}{
		{"access token bound to two origins", "credentials", access, "gho_16C7e42F292c6912E7710c838347Ae178B4a"},
		{"client secret bound to the token origin", "client_secrets", secret, "s3cr3t-client-secret"},
		{"webhook secret, not bound to origins", "credentials", webhook, "whsec_vectors"},
		{"empty plaintext", "credentials", Binding{WorkspaceID: "ws_vectors", OwnerID: "conn_vectors", Field: "api_key", Origins: []string{}}, ""},
		{"minted access token with its connection's context", "credentials", minted, "ghs_16C7e42F292c6912E7710c838347Ae178B4a"},
	} {
		nonce := material(fmt.Sprintf("nonce %d", i))[:vault.NonceSize]
		env, aad := seal(dek, dekID, c.purpose, c.b, nonce, []byte(c.pt))
		f.Valid = append(f.Valid, SealedCase{Name: c.name, Purpose: c.purpose, Binding: c.b, Plaintext: c.pt,
			Nonce: hx(nonce), AAD: hx(aad), Envelope: hx(env)})
	}
	base, _ := seal(dek, dekID, "credentials", access, material("nonce 0")[:vault.NonceSize], []byte("gho_16C7e42F292c6912E7710c838347Ae178B4a"))
	hdr := 2 + len(dekID) + vault.NonceSize
	mut := func(name string, f func([]byte) []byte, b Binding, purpose, errKind string) BadEnvelope {
		e := f(bytes.Clone(base))
		return BadEnvelope{Name: name, Purpose: purpose, Binding: b, Envelope: hx(e), Error: errKind}
	}
	flip := func(i int) func([]byte) []byte { return func(e []byte) []byte { e[i] ^= 0x01; return e } }
	swapped := access
	swapped.OwnerID, swapped.Field = access.Field, access.OwnerID
	otherWS := access
	otherWS.WorkspaceID = "ws_other"
	noOrigins := access
	noOrigins.Origins = nil
	moreOrigins := access
	moreOrigins.Origins = []string{"https://api.github.com:443", "https://evil.example:443", "https://github.com:443"}
	emptyOrigins := access
	emptyOrigins.Origins = []string{}
	withContext := access
	withContext.Context = minted.Context
	id := func(e []byte) []byte { return e }
	f.Invalid = []BadEnvelope{
		mut("ciphertext byte flipped", flip(hdr), access, "credentials", "decrypt"),
		mut("tag byte flipped", flip(len(base)-1), access, "credentials", "decrypt"),
		mut("nonce byte flipped", flip(2+len(dekID)), access, "credentials", "decrypt"),
		mut("DEK id byte changed (same length)", flip(5), access, "credentials", "decrypt"),
		mut("owner and field swapped in the binding", id, swapped, "credentials", "decrypt"),
		mut("another workspace", id, otherWS, "credentials", "decrypt"),
		mut("another purpose", id, access, "client_secrets", "decrypt"),
		mut("origins left out", id, noOrigins, "credentials", "decrypt"),
		mut("an origin added", id, moreOrigins, "credentials", "decrypt"),
		mut("empty origins instead of two", id, emptyOrigins, "credentials", "decrypt"),
		mut("a context added", id, withContext, "credentials", "decrypt"),
		mut("unknown version", func(e []byte) []byte { e[0] = 0x02; return e }, access, "credentials", "malformed"),
		mut("DEK id length 0", func(e []byte) []byte { e[1] = 0; return e }, access, "credentials", "malformed"),
		mut("DEK id length 65", func(e []byte) []byte { e[1] = 65; return e }, access, "credentials", "malformed"),
		mut("DEK id not printable", func(e []byte) []byte { e[3] = 0x20; return e }, access, "credentials", "malformed"),
		mut("truncated inside the tag", func(e []byte) []byte { return e[:hdr+15] }, access, "credentials", "malformed"),
		mut("truncated to the header", func(e []byte) []byte { return e[:5] }, access, "credentials", "malformed"),
	}
	return f
}

// ---- wrapped DEK (local KEK) ----

// WrappedCase is one DEK wrapped by a local KEK.
type WrappedCase struct {
	Name        string `json:"name"`
	WorkspaceID string `json:"workspace_id"`
	Purpose     string `json:"purpose"`
	DEKID       string `json:"dek_id"`
	DEK         string `json:"dek"`
	Nonce       string `json:"nonce"`
	AAD         string `json:"aad"`
	Wrapped     string `json:"wrapped"`
	Error       string `json:"error,omitempty"` // invalid cases: "unwrap"
}

// WrappedFile is wrapped_dek.json.
type WrappedFile struct {
	Format  string        `json:"format"`
	KEK     string        `json:"kek"`
	KEKID   string        `json:"kek_id"`
	Valid   []WrappedCase `json:"valid"`
	Invalid []WrappedCase `json:"invalid"`
}

// WrapAAD is the wrapped DEK's associated data, from the specification.
func WrapAAD(ws, purpose, id string) []byte { return lp([]byte(ws), []byte(purpose), []byte(id)) }

// WrappedDEK generates wrapped_dek.json.
func WrappedDEK() WrappedFile {
	kek := material("local kek")
	sum := sha256.Sum256(append([]byte("authpipe local kek id\x00"), kek...))
	f := WrappedFile{Format: "authpipe.kms.local.v1", KEK: hx(kek), KEKID: "local:" + hx(sum[:8])}
	wrap := func(name, ws, purpose, id string, nonceLabel string) WrappedCase {
		dek := material("dek of " + id)
		nonce := material(nonceLabel)[:12]
		aad := WrapAAD(ws, purpose, id)
		w := gcm(kek).Seal(bytes.Clone(nonce), nonce, dek, aad)
		return WrappedCase{Name: name, WorkspaceID: ws, Purpose: purpose, DEKID: id, DEK: hx(dek), Nonce: hx(nonce), AAD: hx(aad), Wrapped: hx(w)}
	}
	good := wrap("credentials DEK", "ws_vectors", "credentials", "dek_vectors0000000000000001", "wrap nonce 1")
	f.Valid = []WrappedCase{good, wrap("client-secrets DEK", "ws_vectors", "client_secrets", "dek_vectors0000000000000002", "wrap nonce 2")}
	bad := func(name string, edit func(*WrappedCase)) WrappedCase {
		c := good
		c.Name, c.Error = name, "unwrap"
		edit(&c)
		c.AAD = hx(WrapAAD(c.WorkspaceID, c.Purpose, c.DEKID))
		return c
	}
	f.Invalid = []WrappedCase{
		bad("moved to another workspace", func(c *WrappedCase) { c.WorkspaceID = "ws_other" }),
		bad("claimed for the other purpose", func(c *WrappedCase) { c.Purpose = "client_secrets" }),
		bad("under another DEK id", func(c *WrappedCase) { c.DEKID = "dek_vectors0000000000000003" }),
		bad("wrapped byte flipped", func(c *WrappedCase) {
			w, _ := hex.DecodeString(c.Wrapped)
			w[20] ^= 1
			c.Wrapped = hx(w)
		}),
	}
	return f
}

// ---- audit chain ----

// Event is an audit event as exports and the vectors write it.
type Event = audit.ExportEvent

// FromAudit converts an event.
func FromAudit(e audit.Event) Event { return audit.ExportOf(e) }

// Head is a recorded chain head (audit_heads, or a checkpoint).
type Head struct {
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	ID   string `json:"event_id"`
}

// ChainCase is one chain, and what a verifier must say about it.
type ChainCase struct {
	Name     string  `json:"name"`
	Events   []Event `json:"events"`
	Head     *Head   `json:"head,omitempty"` // the recorded head the chain must end at
	OK       bool    `json:"ok"`
	FirstBad string  `json:"first_bad,omitempty"`
}

// ChainFile is audit_chain.json.
type ChainFile struct {
	Format  string      `json:"format"`
	Genesis string      `json:"genesis"`
	Chains  []ChainCase `json:"chains"`
}

func chainEvents() []audit.Event {
	t0 := time.Date(2026, 12, 7, 9, 0, 0, 123456000, time.UTC)
	evs := []audit.Event{
		{ID: "evt_v01", WorkspaceID: "ws_vectors", At: t0, Type: audit.APIKeyCreated, Actor: "apk_admin", Outcome: audit.Success, Data: `{"key_id":"apk_backend"}`},
		{ID: "evt_v02", WorkspaceID: "ws_vectors", At: t0.Add(time.Second), Type: audit.ConnectionCreated, Actor: "apk_backend", ConnectionID: "conn_vectors", Outcome: audit.Success, Data: `{"provider":"github"}`},
		// An aggregated read: count reads of one connection by one key with one outcome,
		// between first_at and last_at (at most 1 s apart).
		{ID: "evt_v03", WorkspaceID: "ws_vectors", At: t0.Add(2 * time.Second), Type: audit.TokenRead, Actor: "apk_backend", ConnectionID: "conn_vectors", Outcome: audit.Success,
			Data: `{"count":412,"first_at":"2026-12-07T09:00:01.5Z","last_at":"2026-12-07T09:00:02.4Z"}`},
		{ID: "evt_v04", WorkspaceID: "ws_vectors", At: t0.Add(3 * time.Second), Type: audit.TokenRefresh, Actor: "refresher", ConnectionID: "conn_vectors", Outcome: audit.Failure, ErrorCode: "refresh_unavailable"},
		{ID: "evt_v05", WorkspaceID: "ws_vectors", At: t0.Add(4 * time.Second), Type: audit.ConnectionDisconnected, Actor: "apk_backend", ConnectionID: "conn_vectors", Outcome: audit.Success},
	}
	head, seq := audit.GenesisHash, int64(0)
	for i := range evs {
		audit.Link(&evs[i], seq, head)
		seq, head = evs[i].Seq, evs[i].Hash
	}
	return evs
}

// AuditChain generates audit_chain.json.
func AuditChain() ChainFile {
	evs := chainEvents()
	conv := func(es []audit.Event) []Event {
		out := make([]Event, len(es))
		for i, e := range es {
			out[i] = FromAudit(e)
		}
		return out
	}
	good := conv(evs)
	last := good[len(good)-1]
	head := &Head{Seq: last.Seq, Hash: last.Hash, ID: last.ID}
	edit := func(f func([]Event)) []Event {
		c := append([]Event(nil), good...)
		f(c)
		return c
	}
	f := ChainFile{Format: "authpipe.audit.v1", Genesis: audit.GenesisHash}
	f.Chains = []ChainCase{
		{Name: "valid chain with an aggregated read", Events: good, Head: head, OK: true},
		{Name: "valid chain, no recorded head", Events: good, OK: true},
		{Name: "an event's data edited", Events: edit(func(c []Event) { c[2].Data = strings.Replace(c[2].Data, "412", "411", 1) }), Head: head, FirstBad: "evt_v03"},
		{Name: "an outcome edited", Events: edit(func(c []Event) { c[3].Outcome = audit.Success }), Head: head, FirstBad: "evt_v04"},
		{Name: "two events swapped", Events: edit(func(c []Event) { c[1], c[2] = c[2], c[1] }), Head: head, FirstBad: "evt_v03"},
		{Name: "an event deleted from the middle", Events: append(append([]Event(nil), good[:2]...), good[3:]...), Head: head, FirstBad: "evt_v04"},
		{Name: "the tail deleted (the recorded head is gone)", Events: good[:3], Head: head, FirstBad: "evt_v05"},
		{Name: "the first event's prev_hash is not the genesis", Events: edit(func(c []Event) { c[0].PrevHash = c[1].Hash }), Head: head, FirstBad: "evt_v01"},
		{Name: "a timestamp moved by a microsecond", Events: edit(func(c []Event) { c[1].At = "2026-12-07T09:00:01.123457Z" }), Head: head, FirstBad: "evt_v02"},
		{Name: "a sequence number skipped", Events: edit(func(c []Event) { c[4].Seq = 6 }), Head: head, FirstBad: "evt_v05"},
	}
	return f
}

// ---- checkpoints ----

// CheckpointCase is a checkpoint a verifier must refuse, and the keys it trusts.
type CheckpointCase struct {
	Name       string           `json:"name"`
	Checkpoint audit.Checkpoint `json:"checkpoint"`
	Trusted    []string         `json:"trusted"`
	Error      string           `json:"error,omitempty"` // "parse", "signature", "untrusted"
}

// CheckpointFile is checkpoint.json.
type CheckpointFile struct {
	Format    string           `json:"format"`
	Seed      string           `json:"seed"`
	PublicKey string           `json:"public_key"`
	KeyID     string           `json:"kid"`
	Message   string           `json:"message"` // the signed encoding of valid[0], hex
	Valid     []CheckpointCase `json:"valid"`
	Invalid   []CheckpointCase `json:"invalid"`
}

// CheckpointMessage is the signed encoding, from the specification.
func CheckpointMessage(c audit.Checkpoint) []byte {
	var b []byte
	u64 := func(n uint64) { b = binary.BigEndian.AppendUint64(b, n) }
	field := func(s string) { u64(uint64(len(s))); b = append(b, s...) }
	field("authpipe.audit.checkpoint.v1")
	u64(uint64(c.Version))
	field(c.WorkspaceID)
	u64(uint64(c.Seq))
	field(c.Hash)
	field(c.EventID)
	field(c.At.UTC().Format(time.RFC3339Nano))
	field(c.KeyID)
	field(c.PublicKey)
	return b
}

// Checkpoints generates checkpoint.json.
func Checkpoints() CheckpointFile {
	seed := material("checkpoint seed")
	s, err := audit.NewSigner(seed)
	if err != nil {
		panic(err)
	}
	evs := chainEvents()
	last := evs[len(evs)-1]
	at := time.Date(2026, 12, 7, 9, 5, 0, 0, time.UTC)
	good := s.Sign("ws_vectors", last.Seq, last.Hash, last.ID, at)
	other, _ := audit.NewSigner(material("another checkpoint seed"))
	f := CheckpointFile{Format: "authpipe.audit.checkpoint.v1", Seed: hx(seed),
		PublicKey: base64.RawURLEncoding.EncodeToString(s.PublicKey()), KeyID: s.KeyID(), Message: hx(CheckpointMessage(good))}
	mid := s.Sign("ws_vectors", evs[2].Seq, evs[2].Hash, evs[2].ID, at.Add(-time.Minute))
	f.Valid = []CheckpointCase{
		{Name: "head of the vector chain", Checkpoint: good, Trusted: []string{s.KeyID()}},
		{Name: "a mid-chain checkpoint, no key pinned", Checkpoint: mid},
	}
	bad := func(name, errKind string, trusted []string, edit func(*audit.Checkpoint)) CheckpointCase {
		c := good
		edit(&c)
		return CheckpointCase{Name: name, Checkpoint: c, Trusted: trusted, Error: errKind}
	}
	flipSig := func(c *audit.Checkpoint) {
		sig, _ := base64.RawURLEncoding.DecodeString(c.Signature)
		sig[0] ^= 1
		c.Signature = base64.RawURLEncoding.EncodeToString(sig)
	}
	f.Invalid = []CheckpointCase{
		bad("signature byte flipped", "signature", nil, flipSig),
		bad("seq changed after signing", "signature", nil, func(c *audit.Checkpoint) { c.Seq++ }),
		bad("hash changed after signing", "signature", nil, func(c *audit.Checkpoint) { c.Hash = evs[2].Hash }),
		bad("kid of another key", "signature", nil, func(c *audit.Checkpoint) { c.KeyID = other.KeyID() }),
		bad("re-signed by another key, that key not trusted", "untrusted", []string{s.KeyID()}, func(c *audit.Checkpoint) {
			*c = other.Sign(c.WorkspaceID, c.Seq, c.Hash, c.EventID, c.At)
		}),
		bad("public key replaced, signature kept", "signature", nil, func(c *audit.Checkpoint) {
			c.PublicKey = base64.RawURLEncoding.EncodeToString(other.PublicKey())
			c.KeyID = other.KeyID()
		}),
		bad("unknown version", "parse", nil, func(c *audit.Checkpoint) { c.Version = 2 }),
		bad("truncated signature", "parse", nil, func(c *audit.Checkpoint) { c.Signature = c.Signature[:40] }),
	}
	return f
}

// ---- webhook signatures ----

// WebhookCase is one delivery.
type WebhookCase struct {
	Name   string `json:"name"`
	Secret string `json:"secret"`
	KeyID  string `json:"kid"`
	Body   string `json:"body"`
	Header string `json:"header"`
	OK     bool   `json:"ok"`
}

// WebhookFile is webhook.json.
type WebhookFile struct {
	Format    string        `json:"format"`
	Now       int64         `json:"now"`
	Tolerance int64         `json:"tolerance_seconds"`
	Cases     []WebhookCase `json:"cases"`
}

// Webhooks generates webhook.json.
func Webhooks() WebhookFile {
	now := time.Unix(1796634000, 0) // 2026-12-07T09:00:00Z
	secret := "whsec_" + base64.RawURLEncoding.EncodeToString(material("webhook secret"))
	next := "whsec_" + base64.RawURLEncoding.EncodeToString(material("next webhook secret"))
	body := `{"id":"wev_vectors","type":"connection.needs_reauth","created_at":"2026-12-07T09:00:00Z","data":{"connection_id":"conn_vectors","reason":"invalid_grant"}}`
	sign := func(s string, at time.Time, b string, more ...string) string {
		var extra [][]byte
		for _, m := range more {
			extra = append(extra, []byte(m))
		}
		return webhooksig.Sign([]byte(s), at, []byte(b), extra...)
	}
	good := sign(secret, now, body)
	c := func(name, s, b, h string, ok bool) WebhookCase {
		return WebhookCase{Name: name, Secret: s, KeyID: webhooksig.KID([]byte(s)), Body: b, Header: h, OK: ok}
	}
	return WebhookFile{Format: "authpipe.webhook.v1", Now: now.Unix(), Tolerance: 300, Cases: []WebhookCase{
		c("signed now", secret, body, good, true),
		c("signed 299 s ago", secret, body, sign(secret, now.Add(-299*time.Second), body), true),
		c("during a rotation: the old secret's receiver", secret, body, sign(secret, now, body, next), true),
		c("during a rotation: the new secret's receiver", next, body, sign(secret, now, body, next), true),
		c("body changed by one byte", secret, body[:len(body)-2]+"x}", good, false),
		c("body re-serialized with a space", secret, body[:1]+" "+body[1:], good, false),
		c("another secret", next, body, good, false),
		c("signed 301 s ago", secret, body, sign(secret, now.Add(-301*time.Second), body), false),
		c("signed 301 s in the future", secret, body, sign(secret, now.Add(301*time.Second), body), false),
		c("the timestamp changed, signature kept", secret, body, "t="+fmt.Sprint(now.Unix()-1)+good[len("t=")+10:], false),
		c("the right MAC under another kid", secret, body, "t="+fmt.Sprint(now.Unix())+",v1=whk_000000000000:"+good[len(good)-64:], false),
		c("no timestamp", secret, body, good[len("t=")+11:], false),
	}}
}

// ---- OAuth state, session ids, browser binding, API-key hash ----

// StateCase is one state.
type StateCase struct {
	Name   string `json:"name"`
	Random string `json:"random,omitempty"`
	State  string `json:"state"`
	Hash   string `json:"sha256,omitempty"`
	OK     bool   `json:"ok"`
}

// StateFile is state.json.
type StateFile struct {
	Format string      `json:"format"`
	Label  string      `json:"label"`
	Key    string      `json:"key"`
	KeyID  string      `json:"kid"`
	Cases  []StateCase `json:"cases"`
}

const stateLabel = "authpipe-proxy connect-flow state v1"

func makeState(key []byte, kid string, random []byte, version byte) string {
	body := append([]byte{version, byte(len(kid))}, kid...)
	body = append(body, random...)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stateLabel))
	m.Write(body)
	return base64.RawURLEncoding.EncodeToString(m.Sum(body))
}

// States generates state.json.
func States() StateFile {
	key := material("state key")
	kid := "pk_state_vectors"
	random := material("state random")
	good := makeState(key, kid, random, 1)
	raw, _ := base64.RawURLEncoding.DecodeString(good)
	flipped := bytes.Clone(raw)
	flipped[len(flipped)-1] ^= 1
	otherKid := makeState(material("another state key"), kid, random, 1)
	f := StateFile{Format: "authpipe.oauth.state.v1", Label: stateLabel, Key: hx(key), KeyID: kid}
	f.Cases = []StateCase{
		{Name: "a state", Random: hx(random), State: good, Hash: hx(oauthflow.HashState(good)), OK: true},
		{Name: "tag byte flipped", State: base64.RawURLEncoding.EncodeToString(flipped)},
		{Name: "MAC'd with another key under the same kid", State: otherKid},
		{Name: "version 2", State: makeState(key, kid, random, 2)},
		{Name: "truncated by one character", State: good[:len(good)-1]},
		{Name: "padded base64", State: good + "="},
		{Name: "the legacy 43-character shape (no MAC)", State: base64.RawURLEncoding.EncodeToString(random)},
	}
	return f
}

// SessionIDCase is one connect session id.
type SessionIDCase struct {
	Name      string `json:"name"`
	Random    string `json:"random,omitempty"`
	SessionID string `json:"session_id"`
	OK        bool   `json:"ok"`
}

// SessionIDFile is session_id.json.
type SessionIDFile struct {
	Format string          `json:"format"`
	Label  string          `json:"label"`
	Key    string          `json:"key"`
	KeyID  string          `json:"kid"`
	Cases  []SessionIDCase `json:"cases"`
}

const sessionIDLabel = "authpipe-proxy connect session id v1"

func makeSessionID(key []byte, kid string, random []byte) string {
	fp := sha256.Sum256([]byte(kid))
	raw := append(bytes.Clone(random), fp[:4]...)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sessionIDLabel))
	m.Write(raw)
	raw = append(raw, m.Sum(nil)[:12]...)
	out := make([]byte, ids.EncodedLen(len(raw)))
	ids.Encode(out, raw)
	return "cs_" + string(out)
}

// SessionIDs generates session_id.json.
func SessionIDs() SessionIDFile {
	key := material("state key")
	kid := "pk_state_vectors"
	random := material("session random")[:16]
	good := makeSessionID(key, kid, random)
	tampered := []byte(good)
	if tampered[len(tampered)-1] == 'a' {
		tampered[len(tampered)-1] = 'b'
	} else {
		tampered[len(tampered)-1] = 'a'
	}
	return SessionIDFile{Format: "authpipe.connect.session_id.v1", Label: sessionIDLabel, Key: hx(key), KeyID: kid, Cases: []SessionIDCase{
		{Name: "a session id", Random: hx(random), SessionID: good, OK: true},
		{Name: "last character changed", SessionID: string(tampered)},
		{Name: "MAC'd with another key", SessionID: makeSessionID(material("another state key"), kid, random)},
		{Name: "fingerprint of another kid", SessionID: makeSessionID(key, "pk_other", random)},
		{Name: "upper case", SessionID: "cs_" + bytesToUpper(good[3:])},
		{Name: "wrong prefix", SessionID: "cx_" + good[3:]},
	}}
}

func bytesToUpper(s string) string { return string(bytes.ToUpper([]byte(s))) }

// BindingCase is one browser binding MAC.
type BindingCase struct {
	SessionID string `json:"session_id"`
	Nonce     string `json:"nonce"`
	MAC       string `json:"mac"`
}

// BindingFile is browser_binding.json.
type BindingFile struct {
	Format string        `json:"format"`
	Label  string        `json:"label"`
	Key    string        `json:"key"`
	Cases  []BindingCase `json:"cases"`
}

// BrowserBindings generates browser_binding.json.
func BrowserBindings() BindingFile {
	key := material("state key")
	f := BindingFile{Format: "authpipe.connect.browser_binding.v1", Label: "authpipe-proxy connect-flow browser binding v1", Key: hx(key)}
	for i, sid := range []string{SessionIDs().Cases[0].SessionID, "cs_legacyidlegacyidlegacyid"} {
		nonce := base64.RawURLEncoding.EncodeToString(material(fmt.Sprintf("browser nonce %d", i)))
		f.Cases = append(f.Cases, BindingCase{SessionID: sid, Nonce: nonce, MAC: hx(oauthflow.BindingMAC(key, sid, nonce))})
	}
	return f
}

// HashCase is one API key and its stored hash.
type HashCase struct {
	APIKey string `json:"api_key"`
	Hash   string `json:"hash"`
}

// HashFile is apikey_hash.json.
type HashFile struct {
	Format   string     `json:"format"`
	Material string     `json:"key"`
	KeyID    string     `json:"kid"`
	Cases    []HashCase `json:"cases"`
}

// APIKeyHashes generates apikey_hash.json.
func APIKeyHashes() HashFile {
	key := material("api-key hashing key")
	f := HashFile{Format: "authpipe.apikey.hash.v1", Material: hx(key), KeyID: "pk_apikey_vectors"}
	for _, k := range []string{"ap_" + base64.RawURLEncoding.EncodeToString(material("api key 1")), "ap_SENTINELbootstrapKEYxxxxxxxxxxxxxxxxxxxxx"} {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(k))
		f.Cases = append(f.Cases, HashCase{APIKey: k, Hash: hx(m.Sum(nil))})
	}
	return f
}
