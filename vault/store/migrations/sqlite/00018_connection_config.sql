-- +goose Up
-- Per-connection configuration (the values a connection filled into its provider's URL
-- placeholders) and metadata (token-response fields such as instance_url), each a JSON
-- object of strings; '{}' when there is none. A connect session carries the values the
-- application gave (or the end user typed) until the connection is stored.
ALTER TABLE connections ADD COLUMN connection_config TEXT NOT NULL DEFAULT '{}';
ALTER TABLE connections ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE connect_sessions ADD COLUMN connection_config TEXT NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE connect_sessions DROP COLUMN connection_config;
ALTER TABLE connections DROP COLUMN metadata;
ALTER TABLE connections DROP COLUMN connection_config;
