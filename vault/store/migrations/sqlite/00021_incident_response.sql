-- +goose Up
-- Incident response (issue 23): see the PostgreSQL migration. SQLite is one process: the
-- store's own write invalidates the sealed-row cache.
ALTER TABLE workspaces ADD COLUMN frozen_at DATETIME;

CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    selector      TEXT NOT NULL,
    value         TEXT NOT NULL DEFAULT '',
    window_from   DATETIME NOT NULL,
    window_to     DATETIME NOT NULL,
    actor         TEXT NOT NULL,
    created_at    DATETIME NOT NULL
);
CREATE TABLE incident_connections (
    incident_id    TEXT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL,
    state          TEXT NOT NULL,
    version        INTEGER NOT NULL DEFAULT 0,
    access_token   BLOB,
    access_origins TEXT,
    provider       TEXT NOT NULL DEFAULT '',
    refreshed      BOOLEAN NOT NULL DEFAULT FALSE,
    revoked        BOOLEAN NOT NULL DEFAULT FALSE,
    outcome        TEXT NOT NULL DEFAULT '',
    updated_at     DATETIME NOT NULL,
    PRIMARY KEY (incident_id, connection_id)
);

-- +goose Down
DROP TABLE incident_connections;
DROP TABLE incidents;
ALTER TABLE workspaces DROP COLUMN frozen_at;
