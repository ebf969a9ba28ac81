-- +goose Up
-- Machine grants (issue 20): a minted-mode connection's long-lived grant secret — the end
-- user's own OAuth client {"client_id","client_secret"} (oauth2_client_credentials) or
-- the service-account key (jwt_bearer) — sealed under the credentials keyring with
-- vault.GrantSecretBinding, bound to the token endpoint's origin. grant_origins are those
-- origins (a JSON array, part of the associated data, like refresh_origins). NULL when the
-- connection mints with its provider's client.
ALTER TABLE credentials ADD COLUMN grant_secret BYTEA;
ALTER TABLE credentials ADD COLUMN grant_origins TEXT;

-- +goose Down
ALTER TABLE credentials DROP COLUMN grant_origins;
ALTER TABLE credentials DROP COLUMN grant_secret;
