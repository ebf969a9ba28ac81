-- +goose Up
-- The proxy's own keys rotate (issue 11): a rotated key is verify-only from rotated_at
-- until retire_after (NULL: until nothing still needs it, or never), then retired.
ALTER TABLE proxy_keys ADD COLUMN rotated_at DATETIME;
ALTER TABLE proxy_keys ADD COLUMN retire_after DATETIME;
-- A rotated webhook secret (sealed like secret) keeps signing next to the new one until
-- prev_retire_after, so receivers can roll their secret without missing an event.
ALTER TABLE webhook_endpoints ADD COLUMN prev_secret BLOB;
ALTER TABLE webhook_endpoints ADD COLUMN prev_retire_after DATETIME;

-- +goose Down
ALTER TABLE webhook_endpoints DROP COLUMN prev_retire_after;
ALTER TABLE webhook_endpoints DROP COLUMN prev_secret;
ALTER TABLE proxy_keys DROP COLUMN retire_after;
ALTER TABLE proxy_keys DROP COLUMN rotated_at;
