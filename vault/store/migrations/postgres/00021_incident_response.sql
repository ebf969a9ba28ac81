-- +goose Up
-- Incident response (issue 23). A frozen workspace's credentials are not served (423
-- workspace_frozen); the flag travels with the hot path's one read (a join on the
-- workspace's primary key) and its sealed-row cache, which every replica empties when it
-- changes (the empty payload of authpipe_connections, as after a TRUNCATE).
ALTER TABLE workspaces ADD COLUMN frozen_at TIMESTAMPTZ;
-- +goose StatementBegin
CREATE FUNCTION authpipe_notify_workspace_frozen() RETURNS trigger AS $$
BEGIN
    IF OLD.frozen_at IS DISTINCT FROM NEW.frozen_at THEN
        PERFORM pg_notify('authpipe_connections', '');
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER workspaces_notify_frozen AFTER UPDATE ON workspaces
    FOR EACH ROW EXECUTE FUNCTION authpipe_notify_workspace_frozen();

-- An incident rotation (POST /v1/incidents/rotate): what it selects, over which window,
-- and its progress per connection, so that a re-run after a crash rotates nothing twice.
CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    selector      TEXT NOT NULL, -- api_key_id, provider, end_user_id or workspace
    value         TEXT NOT NULL DEFAULT '',
    window_from   TIMESTAMPTZ NOT NULL,
    window_to     TIMESTAMPTZ NOT NULL,
    actor         TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);
-- state: started (the old access token, sealed, is kept until it is revoked), done.
CREATE TABLE incident_connections (
    incident_id    TEXT NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    connection_id  TEXT NOT NULL,
    state          TEXT NOT NULL,
    version        BIGINT NOT NULL DEFAULT 0,
    access_token   BYTEA,
    access_origins TEXT,
    provider       TEXT NOT NULL DEFAULT '',
    refreshed      BOOLEAN NOT NULL DEFAULT FALSE,
    revoked        BOOLEAN NOT NULL DEFAULT FALSE,
    outcome        TEXT NOT NULL DEFAULT '',
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (incident_id, connection_id)
);

-- +goose Down
DROP TABLE incident_connections;
DROP TABLE incidents;
DROP TRIGGER workspaces_notify_frozen ON workspaces;
DROP FUNCTION authpipe_notify_workspace_frozen();
ALTER TABLE workspaces DROP COLUMN frozen_at;
