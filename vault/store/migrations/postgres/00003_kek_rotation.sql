-- +goose Up
-- KEK rotation progress, one row per purpose (credentials, client_secrets), so that a
-- rotation killed at any point resumes where it stopped (vault.Rewrap). last_dek_id is
-- the cursor: DEK ids are visited in order. kek_id is the KEK the rotation moves DEKs to.
CREATE TABLE kek_rotations (
    purpose     TEXT PRIMARY KEY,
    kek_id      TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'done')),
    done        BIGINT NOT NULL DEFAULT 0,
    total       BIGINT NOT NULL DEFAULT 0,
    failed      BIGINT NOT NULL DEFAULT 0,
    last_dek_id TEXT NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ
);

-- +goose Down
DROP TABLE kek_rotations;
