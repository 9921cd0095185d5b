-- The lexical index moves into the retrieval service's memory (ADR 0007): each chunk row
-- carries its terms and their frequencies, which is all a replica needs to build a
-- corpus's postings, and the postings and term_stats tables (with their three B-trees,
-- about 60 rows per chunk) go. Replicas keep their copy current with a per-corpus
-- generation, bumped by every write under the corpus lock, and a log of the documents
-- each generation touched; a query compares its copy's generation with the row's in the
-- statement that reads the hits, so a document is searchable on every replica as soon as
-- its write commits.
--
-- HNSW inserts cost more than the rest of a chunk's write together, and the default
-- offline embedder's vectors carry no weight in the ranking; so a chunk is written with
-- vector_indexed false and enters the HNSW index later, from a background indexer, once
-- its corpus ranks by vectors. Until then the vector arm compares a corpus's pending
-- vectors exactly, so nothing is unsearchable meanwhile.
-- +goose Up
ALTER TABLE retrieval.chunks
    ADD COLUMN terms      text[] NOT NULL DEFAULT '{}',
    ADD COLUMN term_freqs int[]  NOT NULL DEFAULT '{}';

UPDATE retrieval.chunks c
   SET terms = p.terms, term_freqs = p.freqs
  FROM (SELECT tenant_id, corpus_id, chunk_id, array_agg(term ORDER BY term) AS terms, array_agg(tf ORDER BY term) AS freqs
          FROM retrieval.postings GROUP BY tenant_id, corpus_id, chunk_id) p
 WHERE c.tenant_id = p.tenant_id AND c.corpus_id = p.corpus_id AND c.chunk_id = p.chunk_id;

-- index_epoch tells one incarnation of a corpus id from the next (a corpus deleted and
-- created again starts over at generation 0); log_floor is the oldest generation the log
-- still explains: a copy older than it reloads the corpus.
CREATE SEQUENCE retrieval.index_epochs;
ALTER TABLE retrieval.corpora
    ADD COLUMN index_epoch bigint NOT NULL DEFAULT nextval('retrieval.index_epochs'),
    ADD COLUMN generation  bigint NOT NULL DEFAULT 0,
    ADD COLUMN log_floor   bigint NOT NULL DEFAULT 0;

-- index_log: the documents whose chunks each generation replaced or removed.
CREATE TABLE retrieval.index_log (
    tenant_id    text   NOT NULL,
    corpus_id    text   NOT NULL,
    generation   bigint NOT NULL,
    document_ids text[] NOT NULL,
    PRIMARY KEY (tenant_id, corpus_id, generation),
    FOREIGN KEY (tenant_id, corpus_id) REFERENCES retrieval.corpora ON DELETE CASCADE
);

DROP TABLE retrieval.postings;
DROP TABLE retrieval.term_stats;

-- Rows already written are in the HNSW indexes: they start indexed.
ALTER TABLE retrieval.chunks ADD COLUMN vector_indexed boolean NOT NULL DEFAULT true;
ALTER TABLE retrieval.chunks ALTER COLUMN vector_indexed SET DEFAULT false;
DROP INDEX retrieval.chunks_embedding_384_idx;
DROP INDEX retrieval.chunks_embedding_768_idx;
CREATE INDEX chunks_embedding_384_idx ON retrieval.chunks
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_dim = 384 AND vector_indexed;
CREATE INDEX chunks_embedding_768_idx ON retrieval.chunks
    USING hnsw ((embedding::vector(768)) vector_cosine_ops) WHERE embedding_dim = 768 AND vector_indexed;
CREATE INDEX chunks_vector_pending_idx ON retrieval.chunks (tenant_id, corpus_id) WHERE NOT vector_indexed;

-- +goose Down
DROP INDEX retrieval.chunks_vector_pending_idx;
DROP INDEX retrieval.chunks_embedding_384_idx;
DROP INDEX retrieval.chunks_embedding_768_idx;
ALTER TABLE retrieval.chunks DROP COLUMN vector_indexed;
CREATE INDEX chunks_embedding_384_idx ON retrieval.chunks
    USING hnsw ((embedding::vector(384)) vector_cosine_ops) WHERE embedding_dim = 384;
CREATE INDEX chunks_embedding_768_idx ON retrieval.chunks
    USING hnsw ((embedding::vector(768)) vector_cosine_ops) WHERE embedding_dim = 768;
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
INSERT INTO retrieval.postings (tenant_id, corpus_id, term, chunk_id, tf, term_count, impact)
SELECT c.tenant_id, c.corpus_id, t.term, c.chunk_id, t.tf, c.term_count,
       t.tf * 2.2 / (t.tf + 1.2 * (0.25 + 0.75 * c.term_count / 100.0))
  FROM retrieval.chunks c, unnest(c.terms, c.term_freqs) AS t(term, tf);
CREATE INDEX postings_impact_idx ON retrieval.postings (tenant_id, corpus_id, term, impact DESC);
CREATE INDEX postings_chunk_idx ON retrieval.postings (tenant_id, corpus_id, chunk_id);
CREATE TABLE retrieval.term_stats (
    tenant_id text NOT NULL,
    corpus_id text NOT NULL,
    term      text NOT NULL,
    df        int  NOT NULL,
    PRIMARY KEY (tenant_id, corpus_id, term)
);
INSERT INTO retrieval.term_stats (tenant_id, corpus_id, term, df)
SELECT tenant_id, corpus_id, term, count(*) FROM retrieval.postings GROUP BY tenant_id, corpus_id, term;
DROP TABLE retrieval.index_log;
ALTER TABLE retrieval.corpora DROP COLUMN index_epoch, DROP COLUMN generation, DROP COLUMN log_floor;
DROP SEQUENCE retrieval.index_epochs;
ALTER TABLE retrieval.chunks DROP COLUMN terms, DROP COLUMN term_freqs;
