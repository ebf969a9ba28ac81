// Package controlplane is the data plane's link to the cloud control plane: it pulls
// signed provider configuration in and pushes metadata events out, over connections the
// data plane opens (outbound only), and it keeps working when the control plane is away.
//
//   - Push: Emit (non-blocking) hands an Event to a bounded in-memory buffer; a writer
//     moves events into the database outbox (table controlplane_outbox, bounded, oldest
//     dropped and counted) so that they survive restarts; a sender posts them in batches to
//     POST <url>/v1/dataplane/events with the bearer token, deletes them on 2xx and
//     retries with exponential backoff and jitter otherwise. Heartbeats (version, health)
//     and connection counts per provider and status are emitted periodically.
//   - Pull: GET <url>/v1/dataplane/config with If-None-Match returns a SignedConfig; its
//     Ed25519 signature (RFC 8032) over the payload bytes is verified with the pinned
//     public key before the payload is parsed. A document is bound to this deployment
//     (audience = its id, reported in heartbeats and the Authpipe-Deployment-Id header) and
//     to a time window (issued_at within MaxConfigAge, expires_at). A bad signature, a
//     malformed or invalid document, a foreign, stale or expired one, a replayed older
//     version, or one the ConfigApplier refuses because it would change an existing
//     provider's origins or client secret is refused whole: counted, written to the
//     default workspace's audit chain as controlplane.config_refused, reported as a
//     config.refused event, and the last good configuration stays. A valid document goes
//     to a ConfigApplier (the providers service), which validates it exactly as the
//     providers API does and writes it atomically.
//
// The types that cross the boundary are declared in types.go and nowhere else; they hold
// ids, enums, counts, versions and query-less URLs, never a vault.Secret, token, code,
// state, verifier or provider response text (TestBoundaryTypes enforces it). Nothing here
// is on the token-serving path. The protocol is documented in docs/control-plane.md; the
// cptest package is a reference control-plane server for tests and local development.
package controlplane
