-- A key may be scoped to some corpora of its tenant (ADR 0003). Empty: every corpus, as
-- every key was before.
-- +goose Up
ALTER TABLE gateway.api_keys ADD COLUMN corpus_ids text[] NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE gateway.api_keys DROP COLUMN corpus_ids;
