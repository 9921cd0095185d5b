-- document_fences: the newest version of each document whose chunks were written, or
-- that was deleted. A chunk write of an older version (a worker that was overtaken), or of
-- a version not newer than a deleted one (a worker that finished after the delete), is
-- dropped, so a deleted document never comes back. Written under the corpus lock, with
-- the chunks.
-- +goose Up
CREATE TABLE retrieval.document_fences (
    tenant_id   text    NOT NULL,
    corpus_id   text    NOT NULL,
    document_id text    NOT NULL,
    version     bigint  NOT NULL,
    deleted     boolean NOT NULL,
    PRIMARY KEY (tenant_id, corpus_id, document_id)
);

-- +goose Down
DROP TABLE retrieval.document_fences;
