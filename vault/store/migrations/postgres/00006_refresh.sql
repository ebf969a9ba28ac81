-- +goose Up
-- The refresher's state per connection (refresher/lease.go). lease_holder and
-- lease_expires_at are the cross-replica refresh lease: a row is claimed in a short
-- transaction that locks the connection row, the provider is called outside any
-- transaction, and the new tokens are committed in the transaction that releases the
-- lease, only while the lease is still this holder's and the connection's version has not
-- moved. failures / backoff_until / last_error are the backoff of transient failures
-- (error codes only, never a provider's text).
CREATE TABLE refresh_state (
    connection_id    TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    lease_holder     TEXT NOT NULL DEFAULT '',
    lease_expires_at TIMESTAMPTZ,
    failures         INTEGER NOT NULL DEFAULT 0,
    backoff_until    TIMESTAMPTZ,
    rate_limited     BOOLEAN NOT NULL DEFAULT FALSE,
    last_error       TEXT NOT NULL DEFAULT '',
    updated_at       TIMESTAMPTZ NOT NULL
);

-- One webhook endpoint per workspace (refresher/webhooks.go). secret is sealed under the
-- credentials keyring (owner: the workspace id, field "webhook_secret"). audit_seq is the
-- last audit event of the workspace's chain already turned into deliveries.
CREATE TABLE webhook_endpoints (
    workspace_id TEXT PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    url          TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    audit_seq    BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

-- Outgoing webhook deliveries: payload is the JSON body (ids, codes; never a credential).
CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    type            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ,
    last_status     INTEGER NOT NULL DEFAULT 0,
    delivered_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    UNIQUE (workspace_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE next_attempt_at IS NOT NULL;

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
DROP TABLE refresh_state;
