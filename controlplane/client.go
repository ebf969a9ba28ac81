package controlplane

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
	"github.com/authpipe/authpipe-proxy/vault"
)

// Paths of the protocol (docs/control-plane.md), relative to the control plane's URL.
const (
	EventsPath = "/v1/dataplane/events"
	ConfigPath = "/v1/dataplane/config"
)

// Config is the link's configuration.
type Config struct {
	// URL is the control plane's base URL (AUTHPIPE_CONTROL_PLANE_URL): absolute http(s),
	// no query or fragment. The production profile requires https (internal/config).
	URL string
	// Token is the bearer token (AUTHPIPE_CONTROL_PLANE_TOKEN).
	Token vault.Secret
	// PublicKey is the control plane's pinned Ed25519 key
	// (AUTHPIPE_CONTROL_PLANE_PUBLIC_KEY). Without it the configuration is not pulled:
	// an unsigned or unverifiable document is never applied.
	PublicKey ed25519.PublicKey
}

// Store is what the link keeps in the database: the outbox, its own state, connection
// counts, and the audit chain for refused configurations. The package cannot name the
// credential store: internal/app adapts it (app.ControlPlaneStore), and the types below
// are all the link ever reads from it.
type Store interface {
	EnqueueOutbox(ctx context.Context, payloads []string, limit int64) (int64, error)
	OutboxBatch(ctx context.Context, limit int) ([]OutboxEntry, error)
	DeleteOutbox(ctx context.Context, ids []int64) error
	MarkOutboxAttempt(ctx context.Context, ids []int64) error
	// ControlPlaneState returns ErrNoState for a name never set.
	ControlPlaneState(ctx context.Context, name string) (string, error)
	SetControlPlaneState(ctx context.Context, name, value string) error
	// DeploymentID returns this deployment's id (^dep_[a-z2-7]{26}$), creating it on first
	// use; it never changes afterwards.
	DeploymentID(ctx context.Context) (string, error)
	// ConnectionCounts reports statuses as the API shows them.
	ConnectionCounts(ctx context.Context) ([]ConnectionCount, error)
	AppendEvents(ctx context.Context, evs ...audit.Event) error
}

// OutboxEntry is one queued event payload.
type OutboxEntry struct {
	ID       int64
	Payload  string
	Attempts int
}

// ConnectionCount is how many connections of a workspace and provider have a status.
type ConnectionCount struct {
	WorkspaceID string
	Provider    string
	Status      Status
	N           int
}

// ErrNoState is what Store.ControlPlaneState returns for a name never set.
var ErrNoState = errors.New("controlplane: no such state")

// ConfigApplier validates a verified ConfigDocument exactly as the providers API
// validates its input and writes it atomically: every provider or none. It returns an
// error wrapping ErrInvalidConfig when the document is refused; any other error is
// treated as transient (the document is tried again at the next poll). proxy.Server
// satisfies it.
type ConfigApplier interface {
	ApplyControlPlaneConfig(ctx context.Context, doc ConfigDocument) error
}

// Errors a ConfigApplier returns for a document it refuses. ErrOriginChange and
// ErrClientSecretChange wrap ErrInvalidConfig and give the refusal its own error code.
var (
	ErrInvalidConfig      = errors.New("controlplane: invalid configuration")
	ErrOriginChange       = fmt.Errorf("%w: it would change an existing provider's endpoint origins", ErrInvalidConfig)
	ErrClientSecretChange = fmt.Errorf("%w: it would change an existing provider's client secret", ErrInvalidConfig)
)

// Audit vocabulary of the link, in the default workspace's chain.
const (
	AuditConfigRefused = "controlplane.config_refused"
	// AuditActor is the actor of every audit event the link causes (provider.updated
	// included).
	AuditActor = "controlplane"
)

const stateConfigVersion = "config_version"

// Client is the link. Build it with New, hand it to the proxy as its Emitter, and call
// Run once.
type Client struct {
	cfg    Config
	base   *url.URL
	keyID  string
	http   *http.Client
	store  Store
	o      options
	buf    chan Event
	wake   chan struct{}
	auth   string
	ranOne atomic.Bool

	dropped, invalid, sent, refused atomic.Int64

	mu           sync.Mutex
	etag         string
	lastRejected [32]byte
	deploymentID string // cached once read
}

// New validates cfg and builds the link. httpClient must be the control-plane client of
// internal/outbound (no redirects, TLS policy, optional pins).
func New(cfg Config, st Store, httpClient *http.Client, opts ...Option) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" || base.User != nil ||
		base.RawQuery != "" || base.Fragment != "" {
		return nil, errors.New("controlplane: URL must be an absolute http(s) URL without userinfo, query or fragment")
	}
	if cfg.Token.IsZero() {
		return nil, errors.New("controlplane: a token is required")
	}
	if cfg.PublicKey != nil && len(cfg.PublicKey) != ed25519.PublicKeySize {
		return nil, errors.New("controlplane: the public key must be an Ed25519 key (32 bytes)")
	}
	if st == nil || httpClient == nil {
		return nil, errors.New("controlplane: a store and an HTTP client are required")
	}
	o := defaultOptions()
	for _, f := range opts {
		f(&o)
	}
	if !versionRE.MatchString(o.version) {
		return nil, errors.New("controlplane: version must match ^[0-9A-Za-z.+_-]{1,64}$")
	}
	if o.log == nil || o.now == nil || o.health == nil || o.backoffMin > o.backoffMax {
		return nil, errors.New("controlplane: nil logger, clock or health, or backoff min above max")
	}
	c := &Client{cfg: cfg, base: base, http: httpClient, store: st, o: o,
		buf: make(chan Event, o.bufferSize), wake: make(chan struct{}, 1), auth: "Bearer " + cfg.Token.Reveal()}
	if cfg.PublicKey != nil {
		c.keyID = KeyIDOf(cfg.PublicKey)
	}
	return c, nil
}

// PullEnabled reports whether a public key is pinned, so that configuration is pulled.
func (c *Client) PullEnabled() bool { return c.cfg.PublicKey != nil }

// Sent is the number of events the control plane has accepted since start.
func (c *Client) Sent() int64 { return c.sent.Load() }

// Refused is the number of pulled configuration documents refused since start (a
// document served again at every poll counts each time).
func (c *Client) Refused() int64 { return c.refused.Load() }

// DeploymentHeader carries this deployment's id on every request to the control plane,
// so that it knows which audience to sign a configuration document for.
const DeploymentHeader = "Authpipe-Deployment-Id"

// deployment returns this deployment's id (read once from the store, then cached).
func (c *Client) deployment(ctx context.Context) (string, error) {
	c.mu.Lock()
	id := c.deploymentID
	c.mu.Unlock()
	if id != "" {
		return id, nil
	}
	id, err := c.store.DeploymentID(ctx)
	if err != nil {
		return "", fmt.Errorf("controlplane: deployment id: %w", err)
	}
	if !deploymentRE.MatchString(id) {
		return "", errors.New("controlplane: the stored deployment id is malformed")
	}
	c.mu.Lock()
	c.deploymentID = id
	c.mu.Unlock()
	return id, nil
}

// Run runs the link until ctx ends: the outbox writer, the sender, heartbeats, counts
// and (with a pinned key) the configuration pull applied through applier. It returns
// when every loop has stopped; buffered events are written to the outbox first.
func (c *Client) Run(ctx context.Context, applier ConfigApplier) {
	if !c.ranOne.CompareAndSwap(false, true) {
		panic("controlplane: Run called twice")
	}
	loops := []func(context.Context){c.writeLoop, c.sendLoop, c.heartbeatLoop, c.countsLoop}
	if c.PullEnabled() && applier != nil {
		loops = append(loops, func(ctx context.Context) { c.pullLoop(ctx, applier) })
	} else {
		c.o.log.Warn("controlplane: no public key pinned (AUTHPIPE_CONTROL_PLANE_PUBLIC_KEY); configuration is not pulled")
	}
	var wg sync.WaitGroup
	for _, loop := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); loop(ctx) }()
	}
	wg.Wait()
}

// sendLoop posts the outbox in batches: every batch window, or at once when the writer
// has queued events and the last post succeeded; with backoff after a failure.
func (c *Client) sendLoop(ctx context.Context) {
	delay := time.Duration(0)
	tick := time.NewTicker(c.o.batchWindow)
	defer tick.Stop()
	for {
		if delay > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(jitter(delay)):
			}
		} else {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-c.wake:
				// Let a burst gather for up to one batch window.
				select {
				case <-ctx.Done():
					return
				case <-time.After(c.o.batchWindow):
				}
			}
		}
		ok := c.sendAll(ctx)
		switch {
		case ok:
			delay = 0
		case delay == 0:
			delay = c.o.backoffMin
		default:
			delay = min(delay*2, c.o.backoffMax)
		}
	}
}

// sendAll posts batches until the outbox is empty; it reports false after a failure.
func (c *Client) sendAll(ctx context.Context) bool {
	for ctx.Err() == nil {
		batch, err := c.store.OutboxBatch(ctx, c.o.batchSize)
		if err != nil {
			c.o.log.Warn("controlplane: cannot read the outbox", "err", err)
			return false
		}
		if len(batch) == 0 {
			return true
		}
		if !c.sendBatch(ctx, batch) {
			return false
		}
		if len(batch) < c.o.batchSize {
			return true
		}
	}
	return false
}

func (c *Client) sendBatch(ctx context.Context, batch []OutboxEntry) bool {
	idList := make([]int64, len(batch))
	body := eventBatch{Events: make([]Event, 0, len(batch))}
	var bad int
	for i, row := range batch {
		idList[i] = row.ID
		// Checked again on the way out: a row that does not decode to a valid Event is
		// not sent, whatever put it there.
		var e Event
		dec := json.NewDecoder(strings.NewReader(row.Payload))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil || e.Validate() != nil {
			bad++
			continue
		}
		body.Events = append(body.Events, e)
	}
	if bad > 0 {
		c.invalid.Add(int64(bad))
		c.o.log.Error("controlplane: outbox rows refused at the boundary; not sent", "count", bad)
	}
	status, err := c.post(ctx, body)
	switch {
	case err != nil:
		c.o.log.Warn("controlplane: push failed; will retry", "err", outbound.Redact(err), "events", len(batch))
	case status/100 == 2:
		c.sent.Add(int64(len(body.Events)))
	case status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge || status == http.StatusUnprocessableEntity:
		// The control plane will never take this batch: retrying would block the queue.
		c.dropped.Add(int64(len(body.Events)))
		c.o.log.Error("controlplane: batch refused by the control plane; dropped", "status", status, "events", len(body.Events))
	default:
		c.o.log.Warn("controlplane: push refused; will retry", "status", status, "events", len(batch))
		err = fmt.Errorf("status %d", status)
	}
	if err != nil {
		if merr := c.store.MarkOutboxAttempt(ctx, idList); merr != nil {
			c.o.log.Debug("controlplane: cannot count the attempt", "err", merr)
		}
		return false
	}
	if err := c.store.DeleteOutbox(ctx, idList); err != nil {
		c.o.log.Warn("controlplane: cannot delete delivered events (they will be sent again)", "err", err)
		return false
	}
	return true
}

func (c *Client) post(ctx context.Context, body eventBatch) (int, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+EventsPath, bytes.NewReader(b))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	c.setHeaders(ctx, req)
	res, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
	return res.StatusCode, nil
}

func (c *Client) setHeaders(ctx context.Context, req *http.Request) {
	req.Header.Set("Authorization", c.auth)
	req.Header.Set("User-Agent", "authpipe-proxy/"+c.o.version)
	if id, err := c.deployment(ctx); err == nil {
		req.Header.Set(DeploymentHeader, id)
	}
}

func (c *Client) heartbeatLoop(ctx context.Context) {
	every(ctx, c.o.heartbeat, func() {
		hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		h := c.o.health(hctx)
		cancel()
		id, _ := c.deployment(ctx) // omitted while the database cannot say
		c.Emit(ctx, Event{Type: EventHeartbeat, Version: c.o.version, Health: h, DeploymentID: id})
	})
}

// maxCountsPerEvent keeps one counts event small.
const maxCountsPerEvent = 500

func (c *Client) countsLoop(ctx context.Context) {
	every(ctx, c.o.count, func() {
		rows, err := c.store.ConnectionCounts(ctx)
		if err != nil {
			c.o.log.Debug("controlplane: cannot count connections", "err", err)
			return
		}
		for _, e := range countEvents(rows) {
			c.Emit(ctx, e)
		}
	})
}

// countEvents turns store counts into counts events, one or more per workspace.
func countEvents(rows []ConnectionCount) []Event {
	type k struct{ ws, provider string }
	merged := map[k]map[Status]int{}
	var order []k
	for _, r := range rows {
		st := r.Status
		key := k{r.WorkspaceID, r.Provider}
		if merged[key] == nil {
			merged[key] = map[Status]int{}
			order = append(order, key)
		}
		merged[key][st] += r.N
	}
	var out []Event
	var cur *Event
	for _, key := range order {
		for _, st := range statuses {
			n, ok := merged[key][st]
			if !ok {
				continue
			}
			if cur == nil || cur.WorkspaceID != key.ws || len(cur.Counts) >= maxCountsPerEvent {
				out = append(out, Event{Type: EventCounts, WorkspaceID: key.ws})
				cur = &out[len(out)-1]
			}
			cur.Counts = append(cur.Counts, Count{WorkspaceID: key.ws, Provider: key.provider, Status: st, N: n})
		}
	}
	return out
}

// every runs f at once and then every d until ctx ends.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		f()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// jitter returns a duration in [d/2, d), drawn from crypto/rand.
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	half := d / 2
	return half + time.Duration(binary.BigEndian.Uint64(b[:])%uint64(half))
}
