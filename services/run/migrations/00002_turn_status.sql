-- How each turn ended: complete, or cancelled (the client went away mid-run) or failed
-- (a provider failed). Both messages of a run carry it; history skips all but complete.
-- +goose Up
ALTER TABLE run.messages ADD COLUMN status text NOT NULL DEFAULT 'complete'
    CHECK (status IN ('complete', 'cancelled', 'failed'));

-- +goose Down
ALTER TABLE run.messages DROP COLUMN status;
