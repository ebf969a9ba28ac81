-- +goose Up
-- The anomaly detection's client baseline (issue 23, internal/audit/anomaly_clients.go):
-- per API key, when its warm-up ends (clients first seen before are learnt, not reported)
-- and the clients it used: a keyed hash (HMAC-SHA256 under the deployment's anomaly key,
-- never an address or a certificate in clear) of each client address (an IPv6 /64) and
-- mTLS client certificate, the most recent ones only (AUTHPIPE_ANOMALY_CLIENTS_PER_KEY).
CREATE TABLE api_key_client_baselines (
    workspace_id   TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    api_key_id     TEXT NOT NULL,
    learning_until TIMESTAMPTZ NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, api_key_id)
);
CREATE TABLE api_key_clients (
    workspace_id TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    api_key_id   TEXT NOT NULL,
    kind         TEXT NOT NULL, -- address, certificate
    client_hash  TEXT NOT NULL,
    first_seen   TIMESTAMPTZ NOT NULL,
    last_seen    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (workspace_id, api_key_id, kind, client_hash)
);
CREATE INDEX api_key_clients_recent ON api_key_clients (workspace_id, api_key_id, last_seen);

-- +goose Down
DROP TABLE api_key_clients;
DROP TABLE api_key_client_baselines;
