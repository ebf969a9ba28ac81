-- +goose Up
-- Why a connection is not active, as a stable code ('' when none is recorded), e.g.
-- provider_origin_changed.
ALTER TABLE connections ADD COLUMN status_reason TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE connections DROP COLUMN status_reason;
