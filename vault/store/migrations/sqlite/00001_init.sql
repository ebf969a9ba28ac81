-- +goose Up
CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  DATETIME NOT NULL
);

-- Wrapped data keys. Only ever stored wrapped, with the KEK that wrapped them.
CREATE TABLE deks (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL,
    purpose      TEXT NOT NULL,
    generation   INTEGER NOT NULL,
    kek_id       TEXT NOT NULL,
    kek_version  TEXT NOT NULL DEFAULT '',
    wrapped      BLOB NOT NULL,
    created_at   DATETIME NOT NULL,
    rewrapped_at DATETIME,
    UNIQUE (workspace_id, purpose, generation)
);
CREATE INDEX deks_kek_id ON deks (kek_id);

-- The proxy's own keys (API-key hashing, ...), sealed under the client-secret keyring.
CREATE TABLE proxy_keys (
    id         TEXT PRIMARY KEY,
    purpose    TEXT NOT NULL,
    state      TEXT NOT NULL,
    sealed     BLOB NOT NULL,
    created_at DATETIME NOT NULL
);
CREATE INDEX proxy_keys_purpose ON proxy_keys (purpose, state);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE,
    hash_key_id  TEXT NOT NULL,
    scopes       TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    revoked_at   DATETIME
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, created_at);

CREATE TABLE providers (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    key          TEXT NOT NULL,
    auth_mode    TEXT NOT NULL,
    config       TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    updated_at   DATETIME NOT NULL,
    UNIQUE (workspace_id, key)
);

-- OAuth client secrets: a table of their own, sealed under the client-secret keyring.
CREATE TABLE provider_secrets (
    provider_id  TEXT PRIMARY KEY REFERENCES providers (id) ON DELETE CASCADE,
    workspace_id TEXT NOT NULL,
    sealed       BLOB NOT NULL,
    prefix       TEXT NOT NULL,
    updated_at   DATETIME NOT NULL
);

CREATE TABLE connections (
    id                TEXT PRIMARY KEY,
    workspace_id      TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    provider          TEXT NOT NULL,
    end_user_id       TEXT NOT NULL,
    auth_mode         TEXT NOT NULL,
    status            TEXT NOT NULL,
    scopes            TEXT NOT NULL DEFAULT '[]',
    credential_prefix TEXT NOT NULL DEFAULT '',
    expires_at        DATETIME,
    last_refreshed_at DATETIME,
    next_refresh_at   DATETIME,
    disconnected_at   DATETIME,
    version           INTEGER NOT NULL DEFAULT 1,
    created_at        DATETIME NOT NULL,
    updated_at        DATETIME NOT NULL
);
CREATE INDEX connections_list ON connections (workspace_id, id);
CREATE INDEX connections_end_user ON connections (workspace_id, end_user_id);
CREATE INDEX connections_due ON connections (next_refresh_at) WHERE next_refresh_at IS NOT NULL;

-- Sealed credentials; every field bound to its connection, field name and workspace.
CREATE TABLE credentials (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id) ON DELETE CASCADE,
    workspace_id  TEXT NOT NULL,
    access_token  BLOB,
    refresh_token BLOB,
    api_key       BLOB,
    token_type    TEXT NOT NULL DEFAULT '',
    updated_at    DATETIME NOT NULL
);

-- One hash chain per workspace. audit_heads serialises appends (row lock) and records the
-- head so that a deleted tail shows.
CREATE TABLE audit_heads (
    workspace_id TEXT PRIMARY KEY,
    seq          INTEGER NOT NULL,
    hash         TEXT NOT NULL,
    event_id     TEXT NOT NULL
);
CREATE TABLE audit_events (
    id            TEXT PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    at            DATETIME NOT NULL,
    type          TEXT NOT NULL,
    actor         TEXT NOT NULL,
    connection_id TEXT NOT NULL DEFAULT '',
    outcome       TEXT NOT NULL,
    error_code    TEXT NOT NULL DEFAULT '',
    data          TEXT NOT NULL DEFAULT '',
    prev_hash     TEXT NOT NULL,
    hash          TEXT NOT NULL,
    UNIQUE (workspace_id, seq)
);

-- +goose Down
DROP TABLE audit_events;
DROP TABLE audit_heads;
DROP TABLE credentials;
DROP TABLE connections;
DROP TABLE provider_secrets;
DROP TABLE providers;
DROP TABLE api_keys;
DROP TABLE proxy_keys;
DROP TABLE deks;
DROP TABLE workspaces;
