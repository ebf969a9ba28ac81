-- +goose Up
-- Origin binding (DESIGN.md "Where a credential may go"): the origins each sealed
-- credential may be presented to, as a JSON array of canonical origins, kept beside the
-- ciphertext and part of its associated data. NULL: sealed before origin binding, not
-- usable for a call that needs the binding until the binding migration binds it.
ALTER TABLE credentials ADD COLUMN access_origins TEXT;
ALTER TABLE credentials ADD COLUMN refresh_origins TEXT;
ALTER TABLE provider_secrets ADD COLUMN origins TEXT;
ALTER TABLE connect_sessions ADD COLUMN verifier_origins TEXT;

-- The binding migration's progress, one row per table it binds: the last id done, so that
-- a restart resumes after it.
CREATE TABLE origin_binding_progress (
    name       TEXT PRIMARY KEY,
    cursor     TEXT NOT NULL DEFAULT '',
    done       BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE origin_binding_progress;
ALTER TABLE connect_sessions DROP COLUMN verifier_origins;
ALTER TABLE provider_secrets DROP COLUMN origins;
ALTER TABLE credentials DROP COLUMN refresh_origins;
ALTER TABLE credentials DROP COLUMN access_origins;
