package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// SessionParams are the Postgres session settings the chunk index relies on: with a
// tenant and corpus filter, HNSW must keep scanning until it has enough matching rows
// (pgvector's iterative scan), or filtered queries return too few results.
func SessionParams() map[string]string {
	return map[string]string{"hnsw.iterative_scan": "relaxed_order", "hnsw.ef_search": "100"}
}

// CodeEmbedderMismatch is answered when chunks embedded one way meet a corpus indexed another.
const CodeEmbedderMismatch = "EMBEDDER_MISMATCH"

// indexedDims are the embedding dimensions with an HNSW index (see migrations).
var indexedDims = []int{384, 768}

// chunkRow is one chunk ready to store.
type chunkRow struct {
	id, document, text string
	ordinal            int
	metadata           []byte
	terms              map[string]int
	length             int
	vector             []float32
}

// replaceDocuments swaps every chunk of the given documents for rows (which belong to
// those documents), keeping postings, document frequencies and corpus counters exact, in
// one transaction. A document in documents without rows ends with no chunks. versions
// holds the version of each versioned document (see fence); the documents it fences are
// left as they are and returned.
func (s *Store) replaceDocuments(ctx context.Context, tenant, corpus, embedder string, documents []string, rows []chunkRow,
	versions map[string]int64) (fenced []string, err error) {
	written := 0
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockCorpus(ctx, tx, tenant, corpus); err != nil {
			return err
		}
		var err error
		if fenced, err = fence(ctx, tx, tenant, corpus, versions); err != nil {
			return err
		}
		if len(fenced) > 0 {
			documents, rows = withoutDocuments(documents, rows, fenced)
		}
		if len(documents) == 0 {
			return nil // every document was fenced: nothing changes
		}
		dim := 0
		for _, r := range rows {
			dim = len(r.vector)
		}
		written = len(rows)
		var current *string
		var currentDim *int
		err = tx.QueryRow(ctx, `SELECT embedder, embedding_dim FROM retrieval.corpora WHERE tenant_id = $1 AND corpus_id = $2`,
			tenant, corpus).Scan(&current, &currentDim)
		if errors.Is(err, pgx.ErrNoRows) {
			return errCorpusNotFound
		}
		if err != nil {
			return err
		}
		if len(rows) > 0 && current != nil && (*current != embedder || *currentDim != dim) {
			return apierr.New(codes.FailedPrecondition, CodeEmbedderMismatch,
				fmt.Sprintf("corpus %s is indexed with %s (%d dimensions); these chunks come from %s (%d): reindex the corpus to switch",
					corpus, *current, *currentDim, embedder, dim), "corpus_id", corpus, "corpus_embedder", *current, "chunk_embedder", embedder)
		}
		removed, removedTerms, err := deleteDocuments(ctx, tx, tenant, corpus, documents)
		if err != nil {
			return err
		}
		added, addedTerms, err := insertChunks(ctx, tx, tenant, corpus, dim, rows)
		if err != nil {
			return err
		}
		// Counters last and in one statement: concurrent writers to one corpus hold its row
		// lock only from here to commit.
		var generation int64
		err = tx.QueryRow(ctx, `
			UPDATE retrieval.corpora
			   SET chunk_count = chunk_count + $3, term_total = term_total + $4,
			       embedder = CASE WHEN $5 > 0 THEN COALESCE(embedder, $6) ELSE embedder END,
			       embedding_dim = CASE WHEN $5 > 0 THEN COALESCE(embedding_dim, $7) ELSE embedding_dim END,
			       generation = generation + 1
			 WHERE tenant_id = $1 AND corpus_id = $2
			RETURNING generation`,
			tenant, corpus, added-removed, addedTerms-removedTerms, len(rows), embedder, dim).Scan(&generation)
		if err != nil {
			return err
		}
		return logGeneration(ctx, tx, tenant, corpus, generation, s.logKeep, documents)
	})
	if err != nil {
		return nil, err
	}
	s.planner.add(written)
	return fenced, nil
}

// fence records the versions written under the corpus lock and returns the documents
// whose version must not be written: older than the newest written, or not newer than a
// deleted one. A late writer (overtaken by a newer version, or finishing after a delete)
// thus cannot replace newer chunks or bring a deleted document back.
func fence(ctx context.Context, tx pgx.Tx, tenant, corpus string, versions map[string]int64) ([]string, error) {
	if len(versions) == 0 {
		return nil, nil
	}
	ids, vs := make([]string, 0, len(versions)), make([]int64, 0, len(versions))
	for id, v := range versions {
		ids, vs = append(ids, id), append(vs, v)
	}
	rows, err := tx.Query(ctx, `
		SELECT f.document_id FROM retrieval.document_fences f
		  JOIN unnest($3::text[], $4::bigint[]) AS w(document_id, version) ON w.document_id = f.document_id
		 WHERE f.tenant_id = $1 AND f.corpus_id = $2 AND (f.version > w.version OR (f.deleted AND f.version >= w.version))`,
		tenant, corpus, ids, vs)
	if err != nil {
		return nil, fmt.Errorf("read document fences: %w", err)
	}
	fenced, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read document fences: %w", err)
	}
	_, err = tx.Exec(ctx, `
		INSERT INTO retrieval.document_fences (tenant_id, corpus_id, document_id, version, deleted)
		SELECT $1, $2, w.document_id, w.version, false FROM unnest($3::text[], $4::bigint[]) AS w(document_id, version)
		 WHERE NOT (w.document_id = ANY($5::text[]))
		ON CONFLICT (tenant_id, corpus_id, document_id) DO UPDATE SET version = excluded.version, deleted = false`,
		tenant, corpus, ids, vs, fenced)
	if err != nil {
		return nil, fmt.Errorf("record document fences: %w", err)
	}
	slices.Sort(fenced)
	return fenced, nil
}

// withoutDocuments drops the fenced documents and their rows.
func withoutDocuments(documents []string, rows []chunkRow, fenced []string) ([]string, []chunkRow) {
	drop := make(map[string]bool, len(fenced))
	for _, id := range fenced {
		drop[id] = true
	}
	keptDocs := documents[:0:0]
	for _, id := range documents {
		if !drop[id] {
			keptDocs = append(keptDocs, id)
		}
	}
	keptRows := rows[:0:0]
	for _, r := range rows {
		if !drop[r.document] {
			keptRows = append(keptRows, r)
		}
	}
	return keptDocs, keptRows
}

// deleteDocuments removes documents' chunks; it returns the chunks and term occurrences removed.
func deleteDocuments(ctx context.Context, tx pgx.Tx, tenant, corpus string, documents []string) (chunks, terms int64, err error) {
	err = tx.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM retrieval.chunks WHERE tenant_id = $1 AND corpus_id = $2 AND document_id = ANY($3::text[])
			RETURNING term_count)
		SELECT count(*), COALESCE(sum(term_count), 0) FROM gone`,
		tenant, corpus, documents).Scan(&chunks, &terms)
	return chunks, terms, err
}

// defaultLogKeep is how many generations of a corpus the index log explains: a replica
// whose copy is older reloads the corpus instead of reading what changed.
const defaultLogKeep = 4096

// logGeneration records which documents a corpus's write (its new generation) replaced or
// removed, for replicas to catch up from (lexicon.go); every logKeep generations it drops
// the entries older than logKeep.
func logGeneration(ctx context.Context, tx pgx.Tx, tenant, corpus string, generation, logKeep int64, documents []string) error {
	if _, err := tx.Exec(ctx, `INSERT INTO retrieval.index_log (tenant_id, corpus_id, generation, document_ids) VALUES ($1, $2, $3, $4)`,
		tenant, corpus, generation, documents); err != nil {
		return fmt.Errorf("log index generation: %w", err)
	}
	if generation%logKeep != 0 {
		return nil
	}
	floor := generation - logKeep
	_, err := tx.Exec(ctx, `
		WITH pruned AS (DELETE FROM retrieval.index_log WHERE tenant_id = $1 AND corpus_id = $2 AND generation <= $3)
		UPDATE retrieval.corpora SET log_floor = $3 WHERE tenant_id = $1 AND corpus_id = $2`, tenant, corpus, floor)
	if err != nil {
		return fmt.Errorf("prune index log: %w", err)
	}
	return nil
}

// lockCorpus serializes writers of one corpus until the transaction ends: document
// frequencies and counters are shared rows, and one writer at a time keeps them exact
// without deadlocks. Readers never take it.
func lockCorpus(ctx context.Context, tx pgx.Tx, tenant, corpus string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('retrieval.corpus/' || $1 || '/' || $2, 0))`, tenant, corpus)
	return err
}

func insertChunks(ctx context.Context, tx pgx.Tx, tenant, corpus string, dim int, rows []chunkRow) (chunks, terms int64, err error) {
	if len(rows) == 0 {
		return 0, 0, nil
	}
	n := len(rows)
	ids, docs, texts, metas, vectors := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	ords, lengths := make([]int32, n), make([]int32, n)
	// Each chunk's terms travel as one text[] literal and its frequencies as one int[]
	// literal: Postgres has no array of arrays of different lengths.
	termLists, freqLists := make([]string, n), make([]string, n)
	for i, r := range rows {
		ids[i], docs[i], texts[i], metas[i], ords[i], lengths[i] = r.id, r.document, r.text, string(r.metadata), int32(r.ordinal), int32(r.length)
		vectors[i] = pgvector.NewVector(r.vector).String()
		termLists[i], freqLists[i] = termArrays(r.terms)
		terms += int64(r.length)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO retrieval.chunks (tenant_id, corpus_id, chunk_id, document_id, ordinal, text, metadata, term_count, embedding_dim, embedding, terms, term_freqs)
		SELECT $1, $2, id, doc, ord, txt, meta::jsonb, len, $3, vec::vector, ts::text[], fs::int[]
		  FROM unnest($4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::int[], $10::text[], $11::text[], $12::text[])
		    AS u(id, doc, ord, txt, meta, len, vec, ts, fs)`,
		tenant, corpus, dim, ids, docs, ords, texts, metas, lengths, vectors, termLists, freqLists); err != nil {
		return 0, 0, fmt.Errorf("insert %d chunks: %w", n, err)
	}
	return int64(n), terms, nil
}

// termArrays are a chunk's distinct terms, sorted, as a Postgres text[] literal, and
// their frequencies as an int[] literal.
func termArrays(tf map[string]int) (terms, freqs string) {
	sorted := make([]string, 0, len(tf))
	for t := range tf {
		sorted = append(sorted, t)
	}
	slices.Sort(sorted)
	var tb, fb strings.Builder
	tb.WriteByte('{')
	fb.WriteByte('{')
	for i, t := range sorted {
		if i > 0 {
			tb.WriteByte(',')
			fb.WriteByte(',')
		}
		tb.WriteByte('"')
		for _, r := range t {
			if r == '"' || r == '\\' {
				tb.WriteByte('\\')
			}
			tb.WriteRune(r)
		}
		tb.WriteByte('"')
		fb.WriteString(strconv.Itoa(tf[t]))
	}
	tb.WriteByte('}')
	fb.WriteByte('}')
	return tb.String(), fb.String()
}

// corpusStats are what BM25 needs about a corpus and a query's terms.
type corpusStats struct {
	chunks   int64
	avgLen   float64
	embedder string
	dim      int
	df       map[string]int64
}

// hit is one fused result.
type hit struct {
	chunkID, documentID, text string
	ordinal                   int
	metadata                  map[string]any
	score                     float64
}

// fetchQuery reads one search's hits: the lexical arm's ranking (from memory), fused by
// reciprocal rank with the vector arm's (run here) when there is a vector.
type fetchQuery struct {
	lexical []string  // chunk ids, best first
	vector  []float32 // nil: lexical only
	dim     int
	depth   int
	topK    int
	// lexicalWeight and vectorWeight scale each ranking's reciprocal ranks in the fusion.
	lexicalWeight, vectorWeight float64
}

// BM25 parameters and the reciprocal-rank-fusion constant.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
	rrfK   = 60
)

// fetchSQL is the read half of a local search in one statement, so that it costs one
// round trip and sees one snapshot: the corpus's index version and updated_at, and the
// fused hits' rows. The vector arm takes the nearest indexed chunks from the partial HNSW index of
// its dimension (same cast, same predicate) and compares the corpus's chunks still
// pending for the index exactly.
func fetchSQL(dim int) string {
	return fmt.Sprintf(`
WITH lex AS (SELECT chunk_id, r FROM unnest($3::text[]) WITH ORDINALITY AS u(chunk_id, r)),
vec AS (
	SELECT chunk_id, row_number() OVER (ORDER BY dist, chunk_id) AS r FROM (
		(SELECT chunk_id, embedding::vector(%[1]d) <=> $4::vector(%[1]d) AS dist
		   FROM retrieval.chunks
		  WHERE tenant_id = $1 AND corpus_id = $2 AND embedding_dim = %[1]d AND vector_indexed AND $4::text IS NOT NULL
		  ORDER BY embedding::vector(%[1]d) <=> $4::vector(%[1]d) LIMIT $5)
		UNION ALL
		(SELECT chunk_id, embedding::vector(%[1]d) <=> $4::vector(%[1]d) AS dist
		   FROM retrieval.chunks
		  WHERE tenant_id = $1 AND corpus_id = $2 AND NOT vector_indexed AND embedding_dim = %[1]d AND $4::text IS NOT NULL
		  ORDER BY 2 LIMIT $5)) nearest
	 ORDER BY dist, chunk_id LIMIT $5),
fused AS (
	SELECT chunk_id, sum(w / (%[2]d + r)) AS score
	  FROM (SELECT chunk_id, r, $7::float8 AS w FROM lex UNION ALL SELECT chunk_id, r, $8::float8 AS w FROM vec) ranks
	 GROUP BY chunk_id ORDER BY score DESC, chunk_id LIMIT $6),
hits AS (
	SELECT c.chunk_id, c.document_id, c.ordinal, c.text, c.metadata, f.score
	  FROM fused f CROSS JOIN LATERAL (SELECT * FROM retrieval.chunks c
	                                    WHERE c.tenant_id = $1 AND c.corpus_id = $2 AND c.chunk_id = f.chunk_id LIMIT 1) c)
SELECT v.index_epoch, v.generation, v.updated_at, h.chunk_id, h.document_id, h.ordinal, h.text, h.metadata, h.score
  FROM retrieval.corpora v LEFT JOIN hits h ON true
 WHERE v.tenant_id = $1 AND v.corpus_id = $2
 ORDER BY h.score DESC, h.chunk_id`, dim, rrfK)
}

// fetchLexicalSQL is fetchSQL without a vector: the hits are the lexical ranking's first
// topK, fused scores their reciprocal ranks.
const fetchLexicalSQL = `
SELECT v.index_epoch, v.generation, v.updated_at, h.chunk_id, h.document_id, h.ordinal, h.text, h.metadata, $4::float8 / (%d + h.r)
  FROM retrieval.corpora v LEFT JOIN LATERAL (
	SELECT c.chunk_id, c.document_id, c.ordinal, c.text, c.metadata, u.r
	  FROM unnest($3::text[]) WITH ORDINALITY AS u(chunk_id, r)
	  -- one primary-key lookup per hit (LIMIT keeps the planner from a hash join over a
	  -- sequential scan, which it prefers on small tables and which reads every chunk)
	  CROSS JOIN LATERAL (SELECT * FROM retrieval.chunks c
	                       WHERE c.tenant_id = $1 AND c.corpus_id = $2 AND c.chunk_id = u.chunk_id LIMIT 1) c) h ON true
 WHERE v.tenant_id = $1 AND v.corpus_id = $2
 ORDER BY h.r`

// fetched is what a fetch read: the hits, and the corpus's state in the same snapshot.
type fetched struct {
	hits      []hit
	version   indexVersion
	updatedAt time.Time
}

// fetch runs q and returns its hits with the corpus's index version in the same snapshot.
func (s *Store) fetch(ctx context.Context, tenant, corpus string, q fetchQuery) (fetched, error) {
	if q.vector == nil {
		rows, err := s.pool.Query(ctx, fmt.Sprintf(fetchLexicalSQL, rrfK), tenant, corpus, trimHits(q.lexical, q.topK), q.lexicalWeight)
		return scanFetched(corpus, rows, err)
	}
	var vec *string
	if q.vector != nil {
		v := pgvector.NewVector(q.vector).String()
		vec = &v
	}
	dim := q.dim
	if !slices.Contains(indexedDims, dim) {
		dim, vec = indexedDims[0], nil // no vector arm for an unindexed dimension
	}
	rows, err := s.pool.Query(ctx, fetchSQL(dim), tenant, corpus, q.lexical, vec, q.depth, q.topK, q.lexicalWeight, q.vectorWeight)
	return scanFetched(corpus, rows, err)
}

// scanFetched reads a fetch's rows: the corpus's state, and its hits unless none.
func scanFetched(corpus string, rows pgx.Rows, err error) (fetched, error) {
	var f fetched
	if err != nil {
		return f, fmt.Errorf("search corpus %s: %w", corpus, err)
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		found = true
		var id, doc, text *string
		var ordinal *int
		var md []byte
		var score *float64
		if err := rows.Scan(&f.version.epoch, &f.version.generation, &f.updatedAt, &id, &doc, &ordinal, &text, &md, &score); err != nil {
			return f, fmt.Errorf("search corpus %s: %w", corpus, err)
		}
		if id == nil {
			continue // the corpus row without hits
		}
		h := hit{chunkID: *id, documentID: *doc, text: *text, ordinal: *ordinal, score: *score}
		_ = json.Unmarshal(md, &h.metadata)
		f.hits = append(f.hits, h)
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("search corpus %s: %w", corpus, err)
	}
	if !found {
		return f, errCorpusNotFound
	}
	return f, nil
}

// deleteDocumentChunks removes a document's chunks outside any replacement. A version
// (0: none) fences the document: chunks of that version or older written later are dropped.
func (s *Store) deleteDocumentChunks(ctx context.Context, tenant, corpus, document string, version int64) (int64, error) {
	var n int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := lockCorpus(ctx, tx, tenant, corpus); err != nil {
			return err
		}
		if version > 0 {
			if _, err := tx.Exec(ctx, `
				INSERT INTO retrieval.document_fences (tenant_id, corpus_id, document_id, version, deleted) VALUES ($1, $2, $3, $4, true)
				ON CONFLICT (tenant_id, corpus_id, document_id)
				DO UPDATE SET version = GREATEST(document_fences.version, excluded.version), deleted = true`,
				tenant, corpus, document, version); err != nil {
				return fmt.Errorf("record the delete's fence: %w", err)
			}
		}
		removed, removedTerms, err := deleteDocuments(ctx, tx, tenant, corpus, []string{document})
		if err != nil || removed == 0 {
			n = removed
			return err
		}
		n = removed
		var generation int64
		if err := tx.QueryRow(ctx, `UPDATE retrieval.corpora SET chunk_count = chunk_count - $3, term_total = term_total - $4, generation = generation + 1
			WHERE tenant_id = $1 AND corpus_id = $2 RETURNING generation`, tenant, corpus, removed, removedTerms).Scan(&generation); err != nil {
			return err
		}
		return logGeneration(ctx, tx, tenant, corpus, generation, s.logKeep, []string{document})
	})
	if err != nil {
		return 0, fmt.Errorf("delete chunks of document %s: %w", document, err)
	}
	return n, nil
}

// readIndex reads what an index at version have (nil: none yet) needs to become current,
// in one read-only snapshot: every chunk of the corpus when have is of another
// incarnation or older than the log explains, else the chunks of the documents written
// since.
func (s *Store) readIndex(ctx context.Context, tenant, corpus string, have *indexVersion) (indexChanges, error) {
	var ch indexChanges
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var floor int64
		var embedder *string
		var dim *int
		err := tx.QueryRow(ctx, `SELECT index_epoch, generation, log_floor, embedder, embedding_dim FROM retrieval.corpora
			WHERE tenant_id = $1 AND corpus_id = $2`, tenant, corpus).Scan(&ch.version.epoch, &ch.version.generation, &floor, &embedder, &dim)
		if errors.Is(err, pgx.ErrNoRows) {
			return errCorpusNotFound
		}
		if err != nil {
			return err
		}
		if embedder != nil {
			ch.embedder, ch.dim = *embedder, *dim
		}
		ch.full = have == nil || have.epoch != ch.version.epoch || have.generation < floor || have.generation > ch.version.generation
		if !ch.full && have.generation == ch.version.generation {
			return nil
		}
		var rows pgx.Rows
		if ch.full {
			rows, err = tx.Query(ctx, `SELECT chunk_id, document_id, term_count, terms, term_freqs FROM retrieval.chunks
				WHERE tenant_id = $1 AND corpus_id = $2`, tenant, corpus)
		} else {
			if err := tx.QueryRow(ctx, `SELECT COALESCE(array_agg(DISTINCT d), '{}') FROM retrieval.index_log, unnest(document_ids) AS d
				WHERE tenant_id = $1 AND corpus_id = $2 AND generation > $3`, tenant, corpus, have.generation).Scan(&ch.documents); err != nil {
				return err
			}
			rows, err = tx.Query(ctx, `SELECT chunk_id, document_id, term_count, terms, term_freqs FROM retrieval.chunks
				WHERE tenant_id = $1 AND corpus_id = $2 AND document_id = ANY($3)`, tenant, corpus, ch.documents)
		}
		if err != nil {
			return err
		}
		ch.chunks, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (indexedChunk, error) {
			var c indexedChunk
			err := r.Scan(&c.id, &c.document, &c.length, &c.terms, &c.freqs)
			return c, err
		})
		return err
	})
	if err != nil && !errors.Is(err, errCorpusNotFound) {
		err = fmt.Errorf("read the index of corpus %s: %w", corpus, err)
	}
	return ch, err
}
