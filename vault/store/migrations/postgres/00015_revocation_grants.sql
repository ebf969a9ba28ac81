-- +goose Up
-- A revocation is of one grant: the connection's own credential (a disconnect; no
-- access_token or refresh_token) or a grant that a reconnect replaced (its sealed tokens, moved
-- here from the credential with their origin bindings). A connection may have several; each
-- ends revoked, or given up after the retention window.
ALTER TABLE revocations DROP CONSTRAINT revocations_pkey;
ALTER TABLE revocations ADD COLUMN id TEXT;
UPDATE revocations SET id = connection_id;
ALTER TABLE revocations ALTER COLUMN id SET NOT NULL;
ALTER TABLE revocations ADD PRIMARY KEY (id);
ALTER TABLE revocations ADD COLUMN access_token BYTEA;
ALTER TABLE revocations ADD COLUMN refresh_token BYTEA;
ALTER TABLE revocations ADD COLUMN access_origins TEXT;
ALTER TABLE revocations ADD COLUMN refresh_origins TEXT;
CREATE INDEX revocations_connection ON revocations (connection_id);

-- +goose Down
DROP INDEX revocations_connection;
DELETE FROM revocations WHERE COALESCE(LENGTH(access_token), 0) > 0 OR COALESCE(LENGTH(refresh_token), 0) > 0;
DELETE FROM revocations r USING revocations o WHERE r.connection_id = o.connection_id AND r.id > o.id;
ALTER TABLE revocations DROP COLUMN refresh_origins;
ALTER TABLE revocations DROP COLUMN access_origins;
ALTER TABLE revocations DROP COLUMN refresh_token;
ALTER TABLE revocations DROP COLUMN access_token;
ALTER TABLE revocations DROP CONSTRAINT revocations_pkey;
ALTER TABLE revocations DROP COLUMN id;
ALTER TABLE revocations ADD PRIMARY KEY (connection_id);
