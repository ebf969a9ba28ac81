-- +goose Up
-- OAuth connect sessions (API.md "Connect"). A row is created by POST /v1/connect/sessions,
-- started once by the browser (state_hash, sealed PKCE verifier and browser binding are
-- written then) and consumed once by the callback. The raw state is never stored: only its
-- SHA-256. The PKCE verifier is sealed under the credentials keyring, bound to the session
-- id and the field "pkce_verifier". Rows live at most 10 minutes (expires_at).
CREATE TABLE connect_sessions (
    id                      TEXT PRIMARY KEY,
    workspace_id            TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    provider                TEXT NOT NULL,
    end_user_id             TEXT NOT NULL,
    callback_url            TEXT NOT NULL,
    return_url              TEXT NOT NULL DEFAULT '',
    scopes                  TEXT NOT NULL DEFAULT '[]',
    state_hash              BLOB UNIQUE,
    pkce_verifier           BLOB,
    browser_binding         BLOB,
    reconnect_connection_id TEXT NOT NULL DEFAULT '',
    expires_at              DATETIME NOT NULL,
    started_at              DATETIME,
    used_at                 DATETIME,
    created_at              DATETIME NOT NULL
);
CREATE INDEX connect_sessions_expires ON connect_sessions (expires_at);

-- +goose Down
DROP TABLE connect_sessions;
