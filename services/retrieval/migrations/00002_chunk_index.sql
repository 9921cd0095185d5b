-- The local chunk index: chunk text and vectors, a postings table for BM25, and the
-- corpus statistics BM25 needs (chunk count, total length, document frequencies).
-- The vector column is unconstrained so that embedders of several dimensions can
-- coexist; each supported dimension gets a partial HNSW index over a cast expression,
-- and queries use the same expression and predicate.
-- +goose Up
ALTER TABLE retrieval.corpora
    ADD COLUMN embedder      text,
    ADD COLUMN embedding_dim int,
    ADD COLUMN chunk_count   bigint NOT NULL DEFAULT 0,
    ADD COLUMN term_total    bigint NOT NULL DEFAULT 0;

CREATE TABLE retrieval.chunks (
    tenant_id     text NOT NULL,
    corpus_id     text NOT NULL,
    chunk_id      text NOT NULL,
    document_id   text NOT NULL,
    ordinal       int  NOT NULL,
    text          text NOT NULL,
    metadata      jsonb NOT NULL DEFAULT '{}',
    term_count    int  NOT NULL,
    embedding_dim int  NOT NULL,
    embedding     vector NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, corpus_id, chunk_id),
    FOREIGN KEY (tenant_id, corpus_id) REFERENCES retrieval.corpora ON DELETE CASCADE
);
CREATE INDEX chunks_document_idx ON retrieval.chunks (tenant_id, corpus_id, document_id);
CREATE INDEX chunks_embedding_384_idx ON retrieval.chunks
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_dim = 384;
CREATE INDEX chunks_embedding_768_idx ON retrieval.chunks
    USING hnsw ((embedding::vector(768)) vector_cosine_ops) WHERE embedding_dim = 768;

-- postings: one row per (term, chunk) with the term's frequency, the chunk's length and
-- the term's impact in the chunk (BM25's tf part at a reference length), so that a query
-- reads each term's postings best first and can stop early.
CREATE TABLE retrieval.postings (
    tenant_id  text NOT NULL,
    corpus_id  text NOT NULL,
    term       text NOT NULL,
    chunk_id   text NOT NULL,
    tf         int  NOT NULL,
    term_count int  NOT NULL,
    impact     real NOT NULL,
    PRIMARY KEY (tenant_id, corpus_id, term, chunk_id)
);
CREATE INDEX postings_impact_idx ON retrieval.postings (tenant_id, corpus_id, term, impact DESC);
CREATE INDEX postings_chunk_idx ON retrieval.postings (tenant_id, corpus_id, chunk_id);

-- term_stats: document (chunk) frequency of each term in a corpus.
CREATE TABLE retrieval.term_stats (
    tenant_id text NOT NULL,
    corpus_id text NOT NULL,
    term      text NOT NULL,
    df        int  NOT NULL,
    PRIMARY KEY (tenant_id, corpus_id, term)
);

-- +goose Down
DROP TABLE retrieval.term_stats;
DROP TABLE retrieval.postings;
DROP TABLE retrieval.chunks;
ALTER TABLE retrieval.corpora DROP COLUMN embedder, DROP COLUMN embedding_dim, DROP COLUMN chunk_count, DROP COLUMN term_total;
