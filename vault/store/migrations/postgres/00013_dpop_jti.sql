-- +goose Up
-- DPoP replay cache shared by every replica (RFC 9449 section 11.1): a proof's jti per API
-- key, kept until the proof can no longer be accepted (expires_at, unix seconds). A second
-- insert of a live (api_key_id, jti) is a replay. Expired rows are deleted in batches by
-- the lifecycle job; no foreign key, so that a deleted key's rows simply expire.
CREATE TABLE dpop_jti (
    api_key_id TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, jti)
);
CREATE INDEX dpop_jti_expires_at ON dpop_jti (expires_at);

-- +goose Down
DROP TABLE dpop_jti;
