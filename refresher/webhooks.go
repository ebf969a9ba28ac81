package refresher

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Webhook event types sent to applications.
const (
	EventNeedsReauth   = "connection.needs_reauth"
	EventRefreshFailed = "connection.refresh_failed"
	EventCreated       = "connection.created"
	EventDisconnected  = "connection.disconnected"
)

// SignatureHeader carries "t=<unix seconds>,v1=<kid>:<hex HMAC-SHA256(secret, t + "." + body)>",
// with one v1 per signing secret: two during a rotation window (the new secret's first).
// The kid is WebhookKID(secret), so a receiver picks the signature of the secret it holds.
// A bare "v1=<hex>" (before key ids) is still accepted by Verify. docs/webhooks.md.
const SignatureHeader = "Authpipe-Signature"

// WebhookRetryWindow bounds how long a delivery is retried with the default config (12
// attempts, backoff from 10 s doubling to a cap of 1 h, with jitter: about 3.5 h): a
// rotated secret keeps signing this long, so receivers have that window to roll.
const WebhookRetryWindow = 6 * time.Hour

// WebhookKID is the key id of a webhook secret: "whk_" and 12 hex digits of
// SHA-256(label ‖ secret). It identifies a secret without revealing anything usable about it.
func WebhookKID(secret []byte) string {
	h := sha256.New()
	h.Write([]byte("authpipe-proxy webhook kid v1\x00"))
	h.Write(secret)
	return "whk_" + hex.EncodeToString(h.Sum(nil)[:6])
}

// NewWebhookSecret returns "whsec_" and 32 random bytes, base64url.
func NewWebhookSecret() (vault.Secret, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return vault.Secret{}, err
	}
	return vault.NewSecret("whsec_" + base64.RawURLEncoding.EncodeToString(b[:])), nil
}

// Sign returns the signature header value of body sent at ts, signed with every secret
// given (the active one first; during a rotation window also the previous one).
func Sign(secret []byte, ts time.Time, body []byte, more ...[]byte) string {
	t := strconv.FormatInt(ts.Unix(), 10)
	var b strings.Builder
	b.WriteString("t=" + t)
	for _, sec := range append([][]byte{secret}, more...) {
		b.WriteString(",v1=" + WebhookKID(sec) + ":" + hex.EncodeToString(webhookMAC(sec, t, body)))
	}
	return b.String()
}

func webhookMAC(secret []byte, t string, body []byte) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(t))
	mac.Write([]byte("."))
	mac.Write(body)
	return mac.Sum(nil)
}

// ErrBadSignature: a webhook's signature header is missing, malformed, stale or wrong.
var ErrBadSignature = errors.New("refresher: bad webhook signature")

// Verify checks a signature header as a receiver should: the timestamp within tolerance
// of now, and the signature whose kid is WebhookKID(secret) (signatures of other kids are
// not tried) equal, in constant time, to the MAC over the timestamp and the raw body. A
// signature without a kid (the format before key ids) is compared too.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts string
	var sigs [][]byte
	kid := WebhookKID(secret)
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			if sk, sv, ok := strings.Cut(v, ":"); ok {
				if sk != kid {
					continue
				}
				v = sv
			}
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrBadSignature
	}
	if d := now.Sub(time.Unix(n, 0)); d > tolerance || d < -tolerance {
		return ErrBadSignature
	}
	want := webhookMAC(secret, ts, body)
	for _, s := range sigs {
		if hmac.Equal(s, want) {
			return nil
		}
	}
	return ErrBadSignature
}

// WebhookPayload is the JSON body of every webhook: identifiers and codes, never a
// credential and never a provider's text.
type WebhookPayload struct {
	ID        string      `json:"id"` // the audit event id: receivers deduplicate by it
	Type      string      `json:"type"`
	CreatedAt time.Time   `json:"created_at"`
	Data      WebhookData `json:"data"`
}

// WebhookData describes the connection concerned.
type WebhookData struct {
	WorkspaceID  string `json:"workspace_id"`
	ConnectionID string `json:"connection_id"`
	Provider     string `json:"provider,omitempty"`
	ErrorCode    string `json:"error_code,omitempty"`
	Reconnected  bool   `json:"reconnected,omitempty"`
}

// MapEvent turns an audit event into a webhook: connection.created (and reconnected),
// connection.disconnected (and erased), and the token.refresh failures the refresher marks
// as webhook-worthy (connection.needs_reauth; connection.refresh_failed once per streak).
func MapEvent(e audit.Event) (typ, payload string, ok bool) {
	var data map[string]string
	if e.Data != "" {
		_ = json.Unmarshal([]byte(e.Data), &data) // non-string values are not ours: ignored
	}
	d := WebhookData{WorkspaceID: e.WorkspaceID, ConnectionID: e.ConnectionID, Provider: data["provider"]}
	switch {
	case e.Type == audit.ConnectionCreated && e.Outcome == audit.Success:
		typ = EventCreated
	case e.Type == audit.ConnectionReconnected && e.Outcome == audit.Success:
		typ, d.Reconnected = EventCreated, true
	case (e.Type == audit.ConnectionDisconnected || e.Type == audit.ConnectionErased) && e.Outcome == audit.Success:
		typ = EventDisconnected
	case e.Type == audit.TokenRefresh && e.Outcome == audit.Failure &&
		(data["webhook"] == EventNeedsReauth || data["webhook"] == EventRefreshFailed):
		typ, d.ErrorCode = data["webhook"], e.ErrorCode
	default:
		return "", "", false
	}
	if e.ConnectionID == "" {
		return "", "", false
	}
	b, err := json.Marshal(WebhookPayload{ID: e.ID, Type: typ, CreatedAt: e.At.UTC(), Data: d})
	if err != nil {
		return "", "", false
	}
	return typ, string(b), true
}

// WebhookStore is what the dispatcher needs of the store.
type WebhookStore interface {
	EnqueueWebhooks(ctx context.Context, mapper store.WebhookMapper, now time.Time, limit int) (int, error)
	ClaimWebhookDeliveries(ctx context.Context, now, claimUntil time.Time, limit int) ([]store.ClaimedDelivery, error)
	FinishWebhookDelivery(ctx context.Context, id string, status int, delivered bool, next *time.Time, now time.Time) error
}

// WebhookConfig tunes delivery. Zero fields take the defaults.
type WebhookConfig struct {
	MaxAttempts int           // default 12
	BackoffBase time.Duration // default 10s, doubling, capped at 1h, with jitter
	Batch       int           // deliveries per pass (default 50)
	Parallel    int           // concurrent deliveries (default 4)
}

// Webhooks turns audit events into signed deliveries and sends them with retries.
type Webhooks struct {
	cfg   WebhookConfig
	store WebhookStore
	creds Sealer
	http  *http.Client
	now   func() time.Time
	log   *slog.Logger
}

// NewWebhooks builds the dispatcher. hc must be the SSRF-guarded outbound client that
// follows no redirects (outbound.Client.TokenClient()).
func NewWebhooks(cfg WebhookConfig, st WebhookStore, creds Sealer, hc *http.Client, now func() time.Time, log *slog.Logger) (*Webhooks, error) {
	if st == nil || creds == nil || hc == nil {
		return nil, errors.New("refresher: webhooks need a store, a sealer and an HTTP client")
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 12
	}
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 10 * time.Second
	}
	if cfg.Batch == 0 {
		cfg.Batch = 50
	}
	if cfg.Parallel == 0 {
		cfg.Parallel = 4
	}
	if cfg.MaxAttempts < 1 || cfg.BackoffBase <= 0 || cfg.Batch < 1 || cfg.Parallel < 1 {
		return nil, errors.New("refresher: invalid webhook config")
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Webhooks{cfg: cfg, store: st, creds: creds, http: hc, now: now, log: log.With("component", "webhooks")}, nil
}

// Run makes one pass: new audit events become deliveries, due deliveries are sent. It
// returns how many were delivered.
func (w *Webhooks) Run(ctx context.Context) (int, error) {
	if _, err := w.store.EnqueueWebhooks(ctx, MapEvent, w.now(), 500); err != nil {
		return 0, err
	}
	now := w.now()
	ds, err := w.store.ClaimWebhookDeliveries(ctx, now, now.Add(2*time.Minute), w.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var (
		mu        sync.Mutex
		delivered int
		wg        sync.WaitGroup
		sem       = make(chan struct{}, w.cfg.Parallel)
	)
	for _, d := range ds {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if w.deliver(ctx, d) {
				mu.Lock()
				delivered++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return delivered, nil
}

func (w *Webhooks) deliver(ctx context.Context, d store.ClaimedDelivery) bool {
	status, err := w.send(ctx, d)
	ok := err == nil && status >= 200 && status < 300
	var next *time.Time
	now := w.now()
	if !ok && d.Attempts+1 < w.cfg.MaxAttempts {
		t := now.Add(backoff(d.Attempts+1, w.cfg.BackoffBase, time.Hour))
		next = &t
	}
	if !ok {
		w.log.LogAttrs(ctx, slog.LevelWarn, "webhook delivery failed", slog.String("delivery", d.ID),
			slog.String("type", d.Type), slog.Int("status", status), slog.Int("attempt", d.Attempts+1), slog.Bool("retry", next != nil))
	}
	if err := w.store.FinishWebhookDelivery(context.WithoutCancel(ctx), d.ID, status, ok, next, now); err != nil {
		w.log.LogAttrs(ctx, slog.LevelWarn, "webhook: record attempt", slog.String("delivery", d.ID), slog.Any("err", err))
	}
	return ok
}

func (w *Webhooks) send(ctx context.Context, d store.ClaimedDelivery) (int, error) {
	secret, err := w.creds.Open(ctx, vault.WebhookSecretBinding(d.WorkspaceID), d.Secret)
	if err != nil {
		return 0, err
	}
	defer secret.Wipe()
	var more [][]byte
	if len(d.PrevSecret) > 0 { // a rotation window: both signatures, so the receiver can roll
		prev, err := w.creds.Open(ctx, vault.WebhookSecretBinding(d.WorkspaceID), d.PrevSecret)
		if err != nil {
			return 0, err
		}
		defer prev.Wipe()
		more = append(more, prev.Bytes())
	}
	body := []byte(d.Payload)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("refresher: webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "authpipe-proxy-webhooks")
	req.Header.Set("Authpipe-Event-Id", d.EventID)
	req.Header.Set("Authpipe-Event-Type", d.Type)
	req.Header.Set(SignatureHeader, Sign(secret.Bytes(), w.now(), body, more...))
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
