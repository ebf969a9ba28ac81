-- +goose Up
-- The hot path's sealed-row cache (vault/store/conncache.go): every write of a connection
-- or its sealed credential, by any replica or tool, notifies authpipe_connections with the
-- connection id after commit, and every replica's listener evicts that id. Row triggers
-- also fire for rows that a cascade deletes.
-- +goose StatementBegin
CREATE FUNCTION authpipe_notify_connection() RETURNS trigger AS $$
BEGIN
    IF TG_TABLE_NAME = 'connections' THEN
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('authpipe_connections', OLD.id);
        ELSE
            PERFORM pg_notify('authpipe_connections', NEW.id);
            IF TG_OP = 'UPDATE' AND OLD.id IS DISTINCT FROM NEW.id THEN
                PERFORM pg_notify('authpipe_connections', OLD.id);
            END IF;
        END IF;
    ELSE
        IF TG_OP = 'DELETE' THEN
            PERFORM pg_notify('authpipe_connections', OLD.connection_id);
        ELSE
            PERFORM pg_notify('authpipe_connections', NEW.connection_id);
            IF TG_OP = 'UPDATE' AND OLD.connection_id IS DISTINCT FROM NEW.connection_id THEN
                PERFORM pg_notify('authpipe_connections', OLD.connection_id);
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER connections_notify AFTER INSERT OR UPDATE OR DELETE ON connections
    FOR EACH ROW EXECUTE FUNCTION authpipe_notify_connection();
CREATE TRIGGER credentials_notify AFTER INSERT OR UPDATE OR DELETE ON credentials
    FOR EACH ROW EXECUTE FUNCTION authpipe_notify_connection();
-- TRUNCATE fires no row trigger: an empty payload empties every cache.
-- +goose StatementBegin
CREATE FUNCTION authpipe_notify_connections_truncate() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('authpipe_connections', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER connections_notify_truncate AFTER TRUNCATE ON connections
    FOR EACH STATEMENT EXECUTE FUNCTION authpipe_notify_connections_truncate();
CREATE TRIGGER credentials_notify_truncate AFTER TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION authpipe_notify_connections_truncate();

-- +goose Down
DROP TRIGGER credentials_notify_truncate ON credentials;
DROP TRIGGER connections_notify_truncate ON connections;
DROP FUNCTION authpipe_notify_connections_truncate();
DROP TRIGGER credentials_notify ON credentials;
DROP TRIGGER connections_notify ON connections;
DROP FUNCTION authpipe_notify_connection();
