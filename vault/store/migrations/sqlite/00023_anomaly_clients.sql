-- +goose Up
-- The anomaly detection's client baseline (issue 23): see the PostgreSQL migration.
CREATE TABLE api_key_client_baselines (
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    api_key_id     TEXT NOT NULL,
    learning_until DATETIME NOT NULL,
    created_at     DATETIME NOT NULL,
    PRIMARY KEY (workspace_id, api_key_id)
);
CREATE TABLE api_key_clients (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    api_key_id   TEXT NOT NULL,
    kind         TEXT NOT NULL,
    client_hash  TEXT NOT NULL,
    first_seen   DATETIME NOT NULL,
    last_seen    DATETIME NOT NULL,
    PRIMARY KEY (workspace_id, api_key_id, kind, client_hash)
);
CREATE INDEX api_key_clients_recent ON api_key_clients (workspace_id, api_key_id, last_seen);

-- +goose Down
DROP TABLE api_key_clients;
DROP TABLE api_key_client_baselines;
