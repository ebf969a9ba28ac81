-- +goose Up
-- Per workspace: the signed checkpoint of the head the last successful verification reached
-- (an incremental verification starts from it), and the lease that lets one verification
-- run at a time across replicas.
CREATE TABLE audit_verifications (
    workspace_id TEXT PRIMARY KEY,
    seq          BIGINT NOT NULL DEFAULT 0,
    hash         TEXT NOT NULL DEFAULT '',
    event_id     TEXT NOT NULL DEFAULT '',
    checkpoint   TEXT NOT NULL DEFAULT '',
    verified_at  TIMESTAMPTZ,
    lease_owner  TEXT NOT NULL DEFAULT '',
    lease_until  TIMESTAMPTZ
);

-- +goose Down
DROP TABLE audit_verifications;
