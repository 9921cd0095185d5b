-- file holds the bytes of a document whose text the worker extracts (a PDF), where content
-- holds the text of every other; size_bytes counts whichever is stored.
-- +goose Up
ALTER TABLE ingest.documents ADD COLUMN file bytea NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE ingest.documents DROP COLUMN file;
