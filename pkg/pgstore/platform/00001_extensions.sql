-- Database-wide prerequisites of NexusRAG.
-- +goose Up
CREATE EXTENSION IF NOT EXISTS vector;

-- +goose Down
-- The extension may be used by other schemas' tables: dropping it is left to an operator.
SELECT 1;
