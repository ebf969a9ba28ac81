package controlplane

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/authpipe/authpipe-proxy/internal/audit"
	"github.com/authpipe/authpipe-proxy/internal/ids"
	"github.com/authpipe/authpipe-proxy/internal/outbound"
)

// KeyIDOf is the key id of an Ed25519 public key in SignedConfig.KeyID: the first 16
// hex digits of the SHA-256 of its 32 bytes.
func KeyIDOf(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// Freshness of a configuration document (docs/control-plane.md).
const (
	// MaxConfigAge is how long after its issued_at a document may still be applied: a
	// signed document older than this is refused, whatever its expires_at.
	MaxConfigAge = 24 * time.Hour
	// MaxConfigClockSkew is how far in the future an issued_at may lie (clock skew
	// between the control plane and this deployment).
	MaxConfigClockSkew = 5 * time.Minute
)

// PullResult says what one pull did.
type PullResult string

// Pull results.
const (
	PullNotModified PullResult = "not_modified" // 304, or the same version as applied
	PullApplied     PullResult = "applied"
	PullRejected    PullResult = "rejected" // refused and audited; the last good config stays
)

func (c *Client) pullLoop(ctx context.Context, applier ConfigApplier) {
	every(ctx, c.o.poll, func() {
		if _, err := c.Pull(ctx, applier); err != nil && ctx.Err() == nil {
			c.o.log.Warn("controlplane: configuration pull failed; will retry", "err", outbound.Redact(err))
		}
	})
}

// Pull fetches the configuration once (If-None-Match with the last ETag), verifies it and
// applies it. An error means a transient failure (network, status, database): nothing
// was applied and the next poll tries again. A refused document is not an error: it is
// audited and reported as PullRejected.
func (c *Client) Pull(ctx context.Context, applier ConfigApplier) (PullResult, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+ConfigPath, nil)
	if err != nil {
		return "", err
	}
	if _, err := c.deployment(ctx); err != nil {
		return "", err // the audience cannot be checked yet
	}
	c.setHeaders(ctx, req)
	req.Header.Set("Accept", "application/json")
	c.mu.Lock()
	if c.etag != "" {
		req.Header.Set("If-None-Match", c.etag)
	}
	c.mu.Unlock()
	res, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusNotModified:
		return PullNotModified, nil
	case http.StatusOK:
	default:
		return "", fmt.Errorf("controlplane: config pull: status %d", res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, MaxConfigBytes+1))
	if err != nil {
		return "", fmt.Errorf("controlplane: config pull: %w", err)
	}
	if len(body) > MaxConfigBytes {
		return c.reject(ctx, body, ErrorInvalidConfig, 0, "document over the size limit")
	}
	return c.apply(ctx, body, res.Header.Get("ETag"), applier)
}

// apply verifies and applies one SignedConfig body.
func (c *Client) apply(ctx context.Context, body []byte, etag string, applier ConfigApplier) (PullResult, error) {
	var sc SignedConfig
	if err := strictJSON(body, &sc); err != nil {
		return c.reject(ctx, body, ErrorInvalidConfig, 0, "malformed envelope")
	}
	// Verify before anything reads the payload.
	if sc.KeyID != c.keyID || len(sc.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(c.cfg.PublicKey, sc.Payload, sc.Signature) {
		return c.reject(ctx, body, ErrorBadSignature, 0, "signature does not verify with the pinned key")
	}
	var doc ConfigDocument
	if err := strictJSON(sc.Payload, &doc); err != nil {
		if carriesClientSecret(sc.Payload) {
			return c.reject(ctx, body, ErrorConfigSecretChange, 0, "a provider carries a client secret")
		}
		return c.reject(ctx, body, ErrorInvalidConfig, 0, "malformed document")
	}
	if err := doc.Validate(); err != nil {
		return c.reject(ctx, body, ErrorInvalidConfig, doc.Version, err.Error())
	}
	deployment, err := c.deployment(ctx)
	if err != nil {
		return "", err
	}
	if code, reason := checkBinding(doc, deployment, c.o.now()); code != "" {
		return c.reject(ctx, body, code, doc.Version, reason)
	}
	applied, err := c.appliedVersion(ctx)
	if err != nil {
		return "", err
	}
	switch {
	case doc.Version < applied:
		return c.reject(ctx, body, ErrorStaleConfigReplay, doc.Version, "older than the applied version "+strconv.FormatInt(applied, 10))
	case doc.Version == applied:
		c.setETag(etag)
		return PullNotModified, nil
	}
	if err := applier.ApplyControlPlaneConfig(ctx, doc); err != nil {
		switch {
		case errors.Is(err, ErrOriginChange):
			return c.reject(ctx, body, ErrorConfigOriginChange, doc.Version, err.Error())
		case errors.Is(err, ErrClientSecretChange):
			return c.reject(ctx, body, ErrorConfigSecretChange, doc.Version, err.Error())
		case errors.Is(err, ErrInvalidConfig):
			return c.reject(ctx, body, ErrorInvalidConfig, doc.Version, err.Error())
		}
		return "", fmt.Errorf("controlplane: apply config version %d: %w", doc.Version, err)
	}
	if err := c.store.SetControlPlaneState(ctx, stateConfigVersion, strconv.FormatInt(doc.Version, 10)); err != nil {
		// Applied but not recorded: the next poll applies the same document again, which
		// changes nothing.
		return "", fmt.Errorf("controlplane: record config version: %w", err)
	}
	c.setETag(etag)
	c.o.log.Info("controlplane: configuration applied", "version", doc.Version, "workspaces", len(doc.Workspaces))
	return PullApplied, nil
}

// checkBinding refuses a document that is not for this deployment now: another audience,
// expired, issued more than MaxConfigAge ago or more than MaxConfigClockSkew ahead. It
// returns the refusal's code and reason, or "" to go on.
func checkBinding(doc ConfigDocument, deployment string, now time.Time) (ErrorCode, string) {
	switch {
	case doc.Audience != deployment:
		return ErrorForeignConfig, "the audience is not this deployment"
	case doc.ExpiresAt.IsZero() || !now.Before(doc.ExpiresAt):
		return ErrorExpiredConfig, "expired (or no expires_at)"
	case doc.IssuedAt.IsZero() || now.Sub(doc.IssuedAt) > MaxConfigAge:
		return ErrorStaleConfig, "issued more than " + MaxConfigAge.String() + " ago (or no issued_at)"
	case doc.IssuedAt.Sub(now) > MaxConfigClockSkew:
		return ErrorFutureConfig, "issued in the future"
	}
	return "", ""
}

// carriesClientSecret reports whether a document that does not decode names a
// client_secret in one of its providers: no document may carry one (there is no field
// for it), and that refusal has its own code.
func carriesClientSecret(payload []byte) bool {
	var probe struct {
		Workspaces []struct {
			Providers []map[string]json.RawMessage `json:"providers"`
		} `json:"workspaces"`
	}
	if json.Unmarshal(payload, &probe) != nil {
		return false
	}
	for _, ws := range probe.Workspaces {
		for _, p := range ws.Providers {
			if _, ok := p["client_secret"]; ok {
				return true
			}
		}
	}
	return false
}

func (c *Client) appliedVersion(ctx context.Context) (int64, error) {
	v, err := c.store.ControlPlaneState(ctx, stateConfigVersion)
	switch {
	case errors.Is(err, ErrNoState):
		return 0, nil
	case err != nil:
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("controlplane: stored config version is not a number")
	}
	return n, nil
}

func (c *Client) setETag(etag string) {
	if len(etag) > 256 {
		etag = ""
	}
	c.mu.Lock()
	c.etag = etag
	c.mu.Unlock()
}

// reject refuses a document: it counts it, logs the reason (never the payload), appends
// controlplane.config_refused to the default workspace's chain and reports a
// config.refused event to the control plane, both once per distinct body so that a
// control plane (or an attacker) serving the same bad document at every poll does not
// flood them. The last good configuration stays in force.
func (c *Client) reject(ctx context.Context, body []byte, code ErrorCode, version int64, reason string) (PullResult, error) {
	c.refused.Add(1)
	sum := sha256.Sum256(body)
	c.mu.Lock()
	repeat := sum == c.lastRejected
	c.lastRejected = sum
	c.mu.Unlock()
	c.o.log.Error("controlplane: configuration refused; keeping the last good one", "code", string(code),
		"version", version, "reason", reason, "body_sha256", hex.EncodeToString(sum[:8]), "repeat", repeat)
	if repeat {
		return PullRejected, nil
	}
	deployment, _ := c.deployment(ctx)
	c.Emit(ctx, Event{Type: EventConfigRefused, ErrorCode: code, ConfigVersion: max(version, 0), DeploymentID: deployment})
	data, _ := json.Marshal(map[string]string{"body_sha256": hex.EncodeToString(sum[:]), "version": strconv.FormatInt(version, 10)})
	ev := audit.Event{WorkspaceID: ids.DefaultWorkspace, At: c.o.now(), Type: AuditConfigRefused, Actor: AuditActor,
		Outcome: audit.Failure, ErrorCode: string(code), Data: string(data)}
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := c.store.AppendEvents(actx, ev); err != nil {
		c.mu.Lock()
		c.lastRejected = [32]byte{} // audit it at the next poll
		c.mu.Unlock()
		return PullRejected, fmt.Errorf("controlplane: audit refused config: %w", err)
	}
	return PullRejected, nil
}

// strictJSON decodes exactly one JSON value with no unknown fields.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}
