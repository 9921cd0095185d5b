-- Documents: the stored text of each document and the state of its ingestion. The text
-- stays here (the worker reads it from here, and reindex needs it); chunks live in the
-- retrieval schema. version counts ingestions: every job carries the version it was
-- queued for, so a job that outlived its version (the document was overwritten, reindexed
-- or deleted since) is recognized and dropped.
-- +goose Up
CREATE TABLE ingest.documents (
    tenant_id           text        NOT NULL,
    document_id         text        NOT NULL,
    corpus_id           text        NOT NULL,
    filename            text        NOT NULL DEFAULT '',
    content_type        text        NOT NULL,
    content             text        NOT NULL,
    size_bytes          bigint      NOT NULL,
    chunk_size_chars    int         NOT NULL,
    chunk_overlap_chars int         NOT NULL,
    -- deleting marks a document whose chunks are being removed (DeleteDocument), so that
    -- nothing re-queues it meanwhile.
    status              text        NOT NULL CHECK (status IN ('queued', 'processing', 'succeeded', 'failed', 'deleting')),
    failure_reason      text        NOT NULL DEFAULT '',
    chunk_count         int         NOT NULL DEFAULT 0,
    version             bigint      NOT NULL DEFAULT 1,
    job_id              text        NOT NULL,
    attempts            int         NOT NULL DEFAULT 0,
    -- enqueued_at is null while the job is not on the queue (Redis was unreachable); the
    -- requeue sweep puts it there.
    enqueued_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    queued_at           timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    PRIMARY KEY (tenant_id, document_id)
);

-- Listing, newest first, optionally by corpus.
CREATE INDEX documents_by_created ON ingest.documents (tenant_id, created_at DESC, document_id DESC);
CREATE INDEX documents_by_corpus ON ingest.documents (tenant_id, corpus_id, created_at DESC, document_id DESC);
-- The requeue sweep looks only at unfinished documents.
CREATE INDEX documents_unfinished ON ingest.documents (updated_at) WHERE status IN ('queued', 'processing');

-- +goose Down
DROP TABLE ingest.documents;
