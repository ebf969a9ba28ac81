-- +goose Up
-- A revocation is of one grant: the connection's own credential (a disconnect; no
-- access_token or refresh_token) or a grant that a reconnect replaced (its sealed tokens, moved
-- here from the credential with their origin bindings). A connection may have several; each
-- ends revoked, or given up after the retention window.
CREATE TABLE revocations_next (
    id              TEXT PRIMARY KEY,
    connection_id   TEXT NOT NULL REFERENCES connections (id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL,
    access_token    BLOB,
    refresh_token   BLOB,
    access_origins  TEXT,
    refresh_origins TEXT
);
INSERT INTO revocations_next (id, connection_id, workspace_id, attempts, next_attempt_at, last_error, created_at)
    SELECT connection_id, connection_id, workspace_id, attempts, next_attempt_at, last_error, created_at FROM revocations;
DROP TABLE revocations;
ALTER TABLE revocations_next RENAME TO revocations;
CREATE INDEX revocations_due ON revocations (next_attempt_at);
CREATE INDEX revocations_connection ON revocations (connection_id);

-- +goose Down
CREATE TABLE revocations_prev (
    connection_id   TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    workspace_id    TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at DATETIME NOT NULL,
    last_error      TEXT NOT NULL DEFAULT '',
    created_at      DATETIME NOT NULL
);
INSERT OR IGNORE INTO revocations_prev (connection_id, workspace_id, attempts, next_attempt_at, last_error, created_at)
    SELECT connection_id, workspace_id, attempts, next_attempt_at, last_error, created_at FROM revocations
    WHERE COALESCE(LENGTH(access_token), 0) = 0 AND COALESCE(LENGTH(refresh_token), 0) = 0;
DROP TABLE revocations;
ALTER TABLE revocations_prev RENAME TO revocations;
CREATE INDEX revocations_due ON revocations (next_attempt_at);
