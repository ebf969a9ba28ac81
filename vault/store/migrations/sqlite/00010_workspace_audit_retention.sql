-- +goose Up
-- Per-workspace audit retention; NULL = the deployment's AUTHPIPE_AUDIT_RETENTION.
ALTER TABLE workspaces ADD COLUMN audit_retention_seconds INTEGER;

-- +goose Down
ALTER TABLE workspaces DROP COLUMN audit_retention_seconds;
