package controlplane

import (
	"context"
	"log/slog"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/buildinfo"
)

// Defaults of the link's timing and bounds.
const (
	DefaultPollInterval      = 60 * time.Second
	DefaultHeartbeatInterval = 30 * time.Second
	DefaultCountsInterval    = 5 * time.Minute
	DefaultBatchWindow       = time.Second
	DefaultBatchSize         = 100
	DefaultQueueLimit        = 100_000
	DefaultBufferSize        = 10_000
	DefaultBackoffMin        = time.Second
	DefaultBackoffMax        = 5 * time.Minute
	// MaxConfigBytes caps the body of GET /v1/dataplane/config.
	MaxConfigBytes = 4 << 20
)

// Option configures New.
type Option func(*options)

type options struct {
	log                    *slog.Logger
	now                    func() time.Time
	version                string
	health                 func(context.Context) Health
	poll, heartbeat, count time.Duration
	batchWindow            time.Duration
	batchSize              int
	queueLimit             int64
	bufferSize             int
	backoffMin, backoffMax time.Duration
}

func defaultOptions() options {
	return options{
		log: slog.New(slog.DiscardHandler), now: time.Now, version: buildVersion(),
		health: func(context.Context) Health { return HealthOK },
		poll:   DefaultPollInterval, heartbeat: DefaultHeartbeatInterval, count: DefaultCountsInterval,
		batchWindow: DefaultBatchWindow, batchSize: DefaultBatchSize, queueLimit: DefaultQueueLimit,
		bufferSize: DefaultBufferSize, backoffMin: DefaultBackoffMin, backoffMax: DefaultBackoffMax,
	}
}

// WithLogger sets the logger (default: discard). Payloads are never logged.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithClock injects the clock.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// WithVersion sets the version reported in heartbeats and the User-Agent (default: the
// build's, internal/buildinfo). It must match ^[0-9A-Za-z.+_-]{1,64}$.
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithHealth sets the function that sums up the data plane's health for heartbeats.
func WithHealth(f func(context.Context) Health) Option { return func(o *options) { o.health = f } }

// WithIntervals sets how often the configuration is pulled, a heartbeat is sent and
// connection counts are sent. Zero keeps a default.
func WithIntervals(poll, heartbeat, counts time.Duration) Option {
	return func(o *options) {
		o.poll = orDefault(poll, o.poll)
		o.heartbeat = orDefault(heartbeat, o.heartbeat)
		o.count = orDefault(counts, o.count)
	}
}

// WithBatching sets the largest batch posted at once and how long the sender waits for
// more events before posting. Zero keeps a default.
func WithBatching(size int, window time.Duration) Option {
	return func(o *options) {
		if size > 0 {
			o.batchSize = size
		}
		o.batchWindow = orDefault(window, o.batchWindow)
	}
}

// WithQueueLimit bounds the database outbox (oldest dropped beyond it) and the in-memory
// buffer in front of it (new events dropped when it is full). Zero keeps a default.
func WithQueueLimit(outbox int64, buffer int) Option {
	return func(o *options) {
		if outbox > 0 {
			o.queueLimit = outbox
		}
		if buffer > 0 {
			o.bufferSize = buffer
		}
	}
}

// WithBackoff sets the retry delays after a failed delivery: doubling from min up to max,
// each with jitter. Zero keeps a default.
func WithBackoff(minDelay, maxDelay time.Duration) Option {
	return func(o *options) {
		o.backoffMin = orDefault(minDelay, o.backoffMin)
		o.backoffMax = orDefault(maxDelay, o.backoffMax)
	}
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// buildVersion is the running build's version (internal/buildinfo: the linker's, or the
// toolchain's), which already fits the heartbeat's version pattern.
func buildVersion() string { return buildinfo.Get().Version }
