-- +goose Up
-- DPoP-bound API keys (RFC 9449): the SHA-256 JWK thumbprint (RFC 7638, base64url) of the
-- public key a key is bound to. Set once, when the key is created; a key without a row
-- here is a plain bearer key.
CREATE TABLE api_key_dpop (
    api_key_id TEXT PRIMARY KEY REFERENCES api_keys (id) ON DELETE CASCADE,
    jkt        TEXT NOT NULL
);

-- +goose Down
DROP TABLE api_key_dpop;
