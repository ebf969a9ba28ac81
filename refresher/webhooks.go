package refresher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/webhooksig"
	"github.com/authpipe/authpipe-proxy/vault"
	"github.com/authpipe/authpipe-proxy/vault/store"
)

// Webhook event types sent to applications.
const (
	EventNeedsReauth   = "connection.needs_reauth"
	EventRefreshFailed = "connection.refresh_failed"
	EventCreated       = "connection.created"
	EventDisconnected  = "connection.disconnected"
	// EventProviderWebhook relays a provider's verified webhook (package inbound).
	EventProviderWebhook = "provider.webhook"
	EventExpiring        = "connection.expiring"
	// EventSecurityAnomaly is a finding of the anomaly detection (audit.SecurityAnomaly).
	EventSecurityAnomaly = "security.anomaly"
)

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
	ConnectionID string `json:"connection_id,omitempty"` // set on every event but security.anomaly's of a key or provider
	Provider     string `json:"provider,omitempty"`
	ErrorCode    string `json:"error_code,omitempty"`
	Reconnected  bool   `json:"reconnected,omitempty"`
	// ProviderEventID and Body are set on provider.webhook: the provider's event id (when
	// its scheme locates one) and the delivery's body exactly as received.
	ProviderEventID string `json:"provider_event_id,omitempty"`
	Body            string `json:"body,omitempty"`
	// RefreshTokenExpiresAt is the refresh token's end (connection.expiring).
	RefreshTokenExpiresAt string `json:"refresh_token_expires_at,omitempty"`
	// Anomaly is the finding (security.anomaly; connection_id is set for refresh_storm only).
	Anomaly *WebhookAnomaly `json:"anomaly,omitempty"`
}

// WebhookAnomaly is a security.anomaly's finding: the kind, the API key's id (key kinds),
// counts and the window, as the audit event records them. Never a credential, a client
// address or a certificate.
type WebhookAnomaly struct {
	Kind     string `json:"kind"`
	APIKeyID string `json:"api_key_id,omitempty"`
	Count    int64  `json:"count"`
	Baseline int64  `json:"baseline"`
	Window   string `json:"window,omitempty"`
}

// MapEvent turns an audit event into a webhook: connection.created (and reconnected),
// connection.disconnected (and erased), connection.needs_reauth (a provider change put the
// connection there; error_code is the reason, e.g. provider_origin_changed), and the
// token.refresh failures the refresher marks as webhook-worthy (connection.needs_reauth;
// connection.refresh_failed once per streak), connection.expiring (a refresh token's
// end is near: the end user must reconnect before it) and security.anomaly (a finding of
// the anomaly detection; no connection id unless the finding names one).
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
	case e.Type == audit.ConnectionExpiring && e.Outcome == audit.Success:
		typ, d.RefreshTokenExpiresAt = EventExpiring, data["refresh_token_expires_at"]
	case e.Type == audit.ConnectionNeedsReauth && e.Outcome == audit.Success:
		typ, d.ErrorCode = EventNeedsReauth, e.ErrorCode
	case e.Type == audit.TokenRefresh && e.Outcome == audit.Failure &&
		(data["webhook"] == EventNeedsReauth || data["webhook"] == EventRefreshFailed):
		typ, d.ErrorCode = data["webhook"], e.ErrorCode
	case e.Type == audit.SecurityAnomaly:
		typ, d.Anomaly = EventSecurityAnomaly, anomalyOf(e, data)
	default:
		return "", "", false
	}
	if e.ConnectionID == "" && typ != EventSecurityAnomaly {
		return "", "", false
	}
	b, err := json.Marshal(WebhookPayload{ID: e.ID, Type: typ, CreatedAt: e.At.UTC(), Data: d})
	if err != nil {
		return "", "", false
	}
	return typ, string(b), true
}

// anomalyOf reads a security.anomaly event's finding (audit.Anomaly's event).
func anomalyOf(e audit.Event, data map[string]string) *WebhookAnomaly {
	count, _ := strconv.ParseInt(data["count"], 10, 64)
	base, _ := strconv.ParseInt(data["baseline"], 10, 64)
	return &WebhookAnomaly{Kind: e.ErrorCode, APIKeyID: data["api_key_id"], Count: count, Baseline: base, Window: data["window"]}
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
	// observe, when set, counts each attempt: "delivered", "retry" or "gave_up".
	observe func(outcome string)
}

// ObserveDeliveries makes w report each delivery attempt's outcome to f ("delivered",
// "retry", "gave_up": metrics.Metrics.WebhookDelivery). Call it before the first Run.
func (w *Webhooks) ObserveDeliveries(f func(outcome string)) { w.observe = f }

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
	if w.observe != nil {
		switch {
		case ok:
			w.observe("delivered")
		case next != nil:
			w.observe("retry")
		default:
			w.observe("gave_up")
		}
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
	req.Header.Set(webhooksig.SignatureHeader, webhooksig.Sign(secret.Bytes(), w.now(), body, more...))
	resp, err := w.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}
