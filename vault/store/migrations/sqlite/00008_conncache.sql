-- +goose Up
-- PostgreSQL's 00008 adds the NOTIFY triggers of the sealed-row cache (conncache.go).
-- SQLite is one process: the cache is invalidated in process only, so nothing here.
SELECT 1;

-- +goose Down
SELECT 1;
