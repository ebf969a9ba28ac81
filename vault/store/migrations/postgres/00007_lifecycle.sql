-- +goose Up
-- Revocations at the provider (RFC 7009) that have not succeeded yet: the connection is
-- revoke_pending, its sealed credential kept, and the retry job tries again with backoff.
CREATE TABLE revocations (
    connection_id   TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX revocations_due ON revocations (next_attempt_at);

-- The retained start of a pruned chain: a signed checkpoint of the last pruned event.
-- Verification starts from it instead of genesis.
CREATE TABLE audit_anchors (
    workspace_id TEXT PRIMARY KEY,
    seq          BIGINT NOT NULL,
    hash         TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    checkpoint   TEXT NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL
);

-- The purge job's scan: disconnected connections by when they were disconnected; audit
-- pruning by time.
CREATE INDEX connections_disconnected ON connections (disconnected_at) WHERE disconnected_at IS NOT NULL;
CREATE INDEX audit_events_at ON audit_events (workspace_id, at);

-- +goose Down
DROP INDEX audit_events_at;
DROP INDEX connections_disconnected;
DROP TABLE audit_anchors;
DROP TABLE revocations;
