-- +goose Up
-- The control-plane link (docs/control-plane.md). controlplane_outbox is the bounded queue
-- of metadata events waiting to be pushed: payload is the JSON of one controlplane.Event
-- (ids, enums, counts; never a secret). Rows are deleted once the control plane has taken
-- them; the oldest are dropped when the queue is over its bound. controlplane_state keeps
-- small named values of the link, such as the version of the last applied configuration.
CREATE TABLE controlplane_outbox (
    id          BIGSERIAL PRIMARY KEY,
    created_at  TIMESTAMPTZ NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE controlplane_state (
    name        TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE controlplane_state;
DROP TABLE controlplane_outbox;
