package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

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
	postings := 0
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
		dim := 0
		for _, r := range rows {
			dim = len(r.vector)
			postings += len(r.terms)
		}
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
		_, err = tx.Exec(ctx, `
			UPDATE retrieval.corpora
			   SET chunk_count = chunk_count + $3, term_total = term_total + $4,
			       embedder = CASE WHEN $5 > 0 THEN COALESCE(embedder, $6) ELSE embedder END,
			       embedding_dim = CASE WHEN $5 > 0 THEN COALESCE(embedding_dim, $7) ELSE embedding_dim END
			 WHERE tenant_id = $1 AND corpus_id = $2`,
			tenant, corpus, added-removed, addedTerms-removedTerms, len(rows), embedder, dim)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.planner.add(postings)
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

// deleteDocuments removes documents' chunks and postings and lowers the document
// frequencies of their terms; it returns the chunks and term occurrences removed.
func deleteDocuments(ctx context.Context, tx pgx.Tx, tenant, corpus string, documents []string) (chunks, terms int64, err error) {
	err = tx.QueryRow(ctx, `
		WITH gone AS (
			DELETE FROM retrieval.chunks WHERE tenant_id = $1 AND corpus_id = $2 AND document_id = ANY($3::text[])
			RETURNING chunk_id, term_count),
		gone_postings AS (
			DELETE FROM retrieval.postings p USING gone
			 WHERE p.tenant_id = $1 AND p.corpus_id = $2 AND p.chunk_id = gone.chunk_id
			RETURNING p.term),
		counts AS (SELECT term, count(*) AS n FROM gone_postings GROUP BY term),
		lowered AS (
			UPDATE retrieval.term_stats t SET df = t.df - c.n FROM counts c
			 WHERE t.tenant_id = $1 AND t.corpus_id = $2 AND t.term = c.term
			RETURNING 1)
		SELECT (SELECT count(*) FROM gone), (SELECT COALESCE(sum(term_count), 0) FROM gone), (SELECT count(*) FROM lowered)`,
		tenant, corpus, documents).Scan(&chunks, &terms, new(int64))
	if err != nil || chunks == 0 {
		return chunks, terms, err
	}
	_, err = tx.Exec(ctx, `DELETE FROM retrieval.term_stats WHERE tenant_id = $1 AND corpus_id = $2 AND df <= 0`, tenant, corpus)
	return chunks, terms, err
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
	var pTerms, pChunks []string
	var pTF, pLen []int32
	var pImpact []float32
	df := map[string]int32{}
	for i, r := range rows {
		ids[i], docs[i], texts[i], metas[i], ords[i], lengths[i] = r.id, r.document, r.text, string(r.metadata), int32(r.ordinal), int32(r.length)
		vectors[i] = pgvector.NewVector(r.vector).String()
		terms += int64(r.length)
		for t, n := range r.terms {
			pTerms, pChunks, pTF, pLen = append(pTerms, t), append(pChunks, r.id), append(pTF, int32(n)), append(pLen, int32(r.length))
			pImpact = append(pImpact, Impact(n, r.length))
			df[t]++
		}
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO retrieval.chunks (tenant_id, corpus_id, chunk_id, document_id, ordinal, text, metadata, term_count, embedding_dim, embedding)
		SELECT $1, $2, id, doc, ord, txt, meta::jsonb, len, $3, vec::vector
		  FROM unnest($4::text[], $5::text[], $6::int[], $7::text[], $8::text[], $9::int[], $10::text[]) AS u(id, doc, ord, txt, meta, len, vec)`,
		tenant, corpus, dim, ids, docs, ords, texts, metas, lengths, vectors); err != nil {
		return 0, 0, fmt.Errorf("insert %d chunks: %w", n, err)
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO retrieval.postings (tenant_id, corpus_id, term, chunk_id, tf, term_count, impact)
		SELECT $1, $2, t, c, tf, len, imp FROM unnest($3::text[], $4::text[], $5::int[], $6::int[], $7::real[]) AS u(t, c, tf, len, imp)`,
		tenant, corpus, pTerms, pChunks, pTF, pLen, pImpact); err != nil {
		return 0, 0, fmt.Errorf("insert postings of %d chunks: %w", n, err)
	}
	dfTerms := make([]string, 0, len(df))
	for t := range df {
		dfTerms = append(dfTerms, t)
	}
	slices.Sort(dfTerms)
	dfCounts := make([]int32, len(dfTerms))
	for i, t := range dfTerms {
		dfCounts[i] = df[t]
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO retrieval.term_stats (tenant_id, corpus_id, term, df)
		SELECT $1, $2, t, n FROM unnest($3::text[], $4::int[]) AS u(t, n)
		ON CONFLICT (tenant_id, corpus_id, term) DO UPDATE SET df = retrieval.term_stats.df + EXCLUDED.df`,
		tenant, corpus, dfTerms, dfCounts); err != nil {
		return 0, 0, fmt.Errorf("update term statistics: %w", err)
	}
	return int64(n), terms, nil
}

// corpusStats are what BM25 needs about a corpus and a query's terms.
type corpusStats struct {
	chunks   int64
	avgLen   float64
	embedder string
	dim      int
	df       map[string]int64
}

func (s *Store) stats(ctx context.Context, tenant, corpus string, terms []string) (corpusStats, error) {
	st := corpusStats{df: map[string]int64{}}
	// One statement, so one snapshot: the chunk count and the document frequencies agree
	// even while documents are indexed or deleted.
	rows, err := s.pool.Query(ctx, `SELECT c.chunk_count, c.term_total, c.embedder, c.embedding_dim, t.term, t.df
		FROM retrieval.corpora c
		LEFT JOIN retrieval.term_stats t ON t.tenant_id = c.tenant_id AND t.corpus_id = c.corpus_id AND t.term = ANY($3)
		WHERE c.tenant_id = $1 AND c.corpus_id = $2`, tenant, corpus, terms)
	if err != nil {
		return st, fmt.Errorf("statistics of corpus %s: %w", corpus, err)
	}
	defer rows.Close()
	var total int64
	found := false
	for rows.Next() {
		var embedder, term *string
		var dim *int
		var df *int64
		if err := rows.Scan(&st.chunks, &total, &embedder, &dim, &term, &df); err != nil {
			return st, fmt.Errorf("statistics of corpus %s: %w", corpus, err)
		}
		found = true
		if embedder != nil {
			st.embedder, st.dim = *embedder, *dim
		}
		if term != nil {
			st.df[*term] = *df
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("statistics of corpus %s: %w", corpus, err)
	}
	if !found {
		return st, fmt.Errorf("statistics of corpus %s: %w", corpus, pgx.ErrNoRows)
	}
	if st.chunks > 0 {
		st.avgLen = float64(total) / float64(st.chunks)
	}
	return st, nil
}

// hit is one fused result.
type hit struct {
	chunkID, documentID, text string
	ordinal                   int
	metadata                  map[string]any
	score                     float64
}

// searchQuery is one hybrid search: BM25 over the weighted terms and cosine distance
// to the vector, each taking its best `depth`, fused by reciprocal rank.
type searchQuery struct {
	terms   []string
	weights []float64 // each term's query weight times its idf
	avgLen  float64
	vector  []float32 // nil: lexical only
	dim     int
	depth   int
	topK    int
	k1, b   float64
	// lexicalWeight and vectorWeight scale each ranking's reciprocal ranks in the fusion.
	lexicalWeight, vectorWeight float64
}

// BM25 parameters (Impact's) and the reciprocal-rank-fusion constant.
const (
	bm25K1 = 1.2
	bm25B  = 0.75
	rrfK   = 60
	// postingsPerTerm bounds what one query term reads: its highest-impact postings.
	postingsPerTerm = 1000
	// impactRefLen is the chunk length at which impact is computed (see Impact).
	impactRefLen = 100.0
)

// Impact is a term's BM25 term-frequency part in a chunk at a reference average length:
// the order in which a term's postings are read. Exact BM25, with the corpus's real
// average length, is computed at query time on the postings read.
func Impact(tf, length int) float32 {
	return float32(float64(tf) * (bm25K1 + 1) / (float64(tf) + bm25K1*(1-bm25B+bm25B*float64(length)/impactRefLen)))
}

// hybridSQL is the whole local search in one statement, so that it costs one round trip.
// The vector arm uses the partial HNSW index of its dimension (same cast, same predicate).
func hybridSQL(dim int) string {
	return fmt.Sprintf(`
WITH q(term, w) AS (SELECT * FROM unnest($3::text[], $4::float8[])),
lex AS (
	SELECT p.chunk_id, row_number() OVER (ORDER BY sum(q.w * p.tf * ($9::float8 + 1) / (p.tf + $9::float8 * (1 - $10::float8 + $10::float8 * p.term_count / $5::float8))) DESC) AS r
	  FROM q CROSS JOIN LATERAL (
		-- each term's best postings only: a frequent term cannot make the query read the corpus
		SELECT chunk_id, tf, term_count FROM retrieval.postings
		 WHERE tenant_id = $1 AND corpus_id = $2 AND term = q.term
		 ORDER BY impact DESC LIMIT %[3]d) p
	 GROUP BY p.chunk_id
	 ORDER BY r LIMIT $7),
vec AS (
	SELECT chunk_id, row_number() OVER (ORDER BY dist) AS r FROM (
		SELECT chunk_id, embedding::vector(%[1]d) <=> $6::vector(%[1]d) AS dist
		  FROM retrieval.chunks
		 WHERE tenant_id = $1 AND corpus_id = $2 AND embedding_dim = %[1]d AND $6::text IS NOT NULL
		 ORDER BY embedding::vector(%[1]d) <=> $6::vector(%[1]d) LIMIT $7) nearest),
fused AS (
	SELECT chunk_id, sum(w / (%[2]d + r)) AS score
	  FROM (SELECT chunk_id, r, $11::float8 AS w FROM lex UNION ALL SELECT chunk_id, r, $12::float8 AS w FROM vec) ranks
	 GROUP BY chunk_id ORDER BY score DESC, chunk_id LIMIT $8)
SELECT c.chunk_id, c.document_id, c.ordinal, c.text, c.metadata, f.score
  FROM fused f JOIN retrieval.chunks c ON c.tenant_id = $1 AND c.corpus_id = $2 AND c.chunk_id = f.chunk_id
 ORDER BY f.score DESC, c.chunk_id`, dim, rrfK, postingsPerTerm)
}

func (s *Store) search(ctx context.Context, tenant, corpus string, q searchQuery) ([]hit, error) {
	var vec *string
	if q.vector != nil {
		v := pgvector.NewVector(q.vector).String()
		vec = &v
	}
	dim := q.dim
	if !slices.Contains(indexedDims, dim) {
		dim, vec = indexedDims[0], nil // no vector arm for an unindexed dimension
	}
	rows, err := s.pool.Query(ctx, hybridSQL(dim), tenant, corpus, q.terms, q.weights, math.Max(q.avgLen, 1), vec, q.depth, q.topK,
		q.k1, q.b, q.lexicalWeight, q.vectorWeight)
	if err != nil {
		return nil, fmt.Errorf("search corpus %s: %w", corpus, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hit, error) {
		var h hit
		var md []byte
		if err := r.Scan(&h.chunkID, &h.documentID, &h.ordinal, &h.text, &md, &h.score); err != nil {
			return h, err
		}
		_ = json.Unmarshal(md, &h.metadata)
		return h, nil
	})
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
		_, err = tx.Exec(ctx, `UPDATE retrieval.corpora SET chunk_count = chunk_count - $3, term_total = term_total - $4
			WHERE tenant_id = $1 AND corpus_id = $2`, tenant, corpus, removed, removedTerms)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("delete chunks of document %s: %w", document, err)
	}
	return n, nil
}
