-- +goose Up
-- Imported grants (API.md "Connections"): the source system's id of an imported
-- connection, unique in its workspace, so that an import run again skips what it already
-- stored (authpipe-proxy import is resumable). NULL for connections made here.
ALTER TABLE connections ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX connections_external_id ON connections (workspace_id, external_id) WHERE external_id IS NOT NULL;

-- Refresh-token lifetime: when the refresh token stops working (the provider's
-- refresh_token_expires_in or the like, or an import's value); NULL when unknown. expiring_notified_for is the refresh_token_expires_at that the
-- connection.expiring webhook was sent for (once per connection per expiry).
ALTER TABLE connections ADD COLUMN refresh_token_expires_at DATETIME;
ALTER TABLE connections ADD COLUMN expiring_notified_for DATETIME;
CREATE INDEX connections_refresh_expiry ON connections (refresh_token_expires_at) WHERE refresh_token_expires_at IS NOT NULL;

-- An OAuth app's next client secret during a secret rotation: sealed like the current one
-- (same binding), tried when the provider answers invalid_client to the current one, then
-- promoted or dropped by an admin.
ALTER TABLE provider_secrets ADD COLUMN next_sealed BLOB;
ALTER TABLE provider_secrets ADD COLUMN next_prefix TEXT NOT NULL DEFAULT '';
ALTER TABLE provider_secrets ADD COLUMN next_origins TEXT;

-- +goose Down
ALTER TABLE provider_secrets DROP COLUMN next_origins;
ALTER TABLE provider_secrets DROP COLUMN next_prefix;
ALTER TABLE provider_secrets DROP COLUMN next_sealed;
DROP INDEX connections_refresh_expiry;
ALTER TABLE connections DROP COLUMN expiring_notified_for;
ALTER TABLE connections DROP COLUMN refresh_token_expires_at;
DROP INDEX connections_external_id;
ALTER TABLE connections DROP COLUMN external_id;
