-- +goose Up
-- The proxy's own keys rotate (issue 11): a rotated key is verify-only from rotated_at
-- until retire_after (NULL: until nothing still needs it, or never), then retired.
ALTER TABLE proxy_keys ADD COLUMN rotated_at DATETIME;
ALTER TABLE proxy_keys ADD COLUMN retire_after DATETIME;

-- +goose Down
ALTER TABLE proxy_keys DROP COLUMN retire_after;
ALTER TABLE proxy_keys DROP COLUMN rotated_at;
