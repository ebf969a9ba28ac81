-- +goose Up
-- Provider webhook signing secrets (issue 24): the secret a provider signs the webhooks it
-- sends with, per connection, or per provider configuration for an app-level secret
-- (Slack's signing secret). Each is sealed under the credentials keyring with the
-- vault.ProviderWebhookSecretBinding of its owner; prev_secret is the one a provider-side
-- rotation replaced, accepted too until it is removed. prefix/prev_prefix are the masked
-- first characters the API shows. A row goes with its owner (ON DELETE CASCADE).
CREATE TABLE connection_webhook_secrets (
    owner_id     TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    prefix       TEXT NOT NULL,
    prev_secret  BYTEA,
    prev_prefix  TEXT NOT NULL DEFAULT '',
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE TABLE provider_webhook_secrets (
    owner_id     TEXT PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    secret       BYTEA NOT NULL,
    prefix       TEXT NOT NULL,
    prev_secret  BYTEA,
    prev_prefix  TEXT NOT NULL DEFAULT '',
    updated_at   TIMESTAMPTZ NOT NULL
);
ALTER TABLE connections ADD COLUMN webhook_secret_prefix TEXT NOT NULL DEFAULT '';

-- Verified provider webhooks, shared by every replica: the SHA-256 of a delivery's signed
-- content per connection, kept until a replay of it could no longer pass the scheme's
-- timestamp check (or its replay window: expires_at, unix seconds). A second insert of a
-- live (owner_id, digest) is a replay. Expired rows are deleted by the lifecycle job.
CREATE TABLE inbound_webhook_seen (
    owner_id   TEXT   NOT NULL,
    digest     TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (owner_id, digest)
);
CREATE INDEX inbound_webhook_seen_expires_at ON inbound_webhook_seen (expires_at);

-- +goose Down
DROP TABLE inbound_webhook_seen;
ALTER TABLE connections DROP COLUMN webhook_secret_prefix;
DROP TABLE provider_webhook_secrets;
DROP TABLE connection_webhook_secrets;
