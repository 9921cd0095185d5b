package retrieval

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Chunks are written with vector_indexed false: an HNSW insert costs more than the rest
// of a chunk's write, and the offline embedder's vectors carry no weight in the ranking
// by default (ADR 0007). The vector indexer enters them into the HNSW index afterwards,
// for the corpora whose ranking weighs vectors; until then the vector arm compares a
// corpus's pending vectors exactly (fetchSQL), so a chunk is found from the moment it is
// written either way.

// vectorBatch is how many chunks one indexer transaction enters into the HNSW index.
const vectorBatch = 256

// indexPendingVectors enters the pending vectors of every corpus whose ranking weighs
// vectors (embedder's defaults for corpora that do not say) into the HNSW index, a batch
// per transaction, and returns how many it entered. Replicas share the work: each batch
// skips rows another holds.
func (s *Store) indexPendingVectors(ctx context.Context, embedder string) (int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+corpusColumns+` FROM retrieval.corpora c
		WHERE EXISTS (SELECT 1 FROM retrieval.chunks k WHERE k.tenant_id = c.tenant_id AND k.corpus_id = c.corpus_id AND NOT k.vector_indexed)`)
	if err != nil {
		return 0, fmt.Errorf("list corpora with pending vectors: %w", err)
	}
	pending, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CorpusRecord, error) { return scanCorpus(r) })
	if err != nil {
		return 0, fmt.Errorf("list corpora with pending vectors: %w", err)
	}
	var entered int64
	for _, c := range pending {
		if c.Config.Provider != ProviderLocal || c.Config.Ranking.params(c.Config.TopKDefault, embedder).vectorWeight <= 0 {
			continue
		}
		for {
			tag, err := s.pool.Exec(ctx, `
				UPDATE retrieval.chunks SET vector_indexed = true
				 WHERE tenant_id = $1 AND corpus_id = $2 AND chunk_id IN (
					SELECT chunk_id FROM retrieval.chunks WHERE tenant_id = $1 AND corpus_id = $2 AND NOT vector_indexed
					 LIMIT $3 FOR UPDATE SKIP LOCKED)`, c.TenantID, c.CorpusID, vectorBatch)
			if err != nil {
				return entered, fmt.Errorf("index the vectors of corpus %s: %w", c.CorpusID, err)
			}
			entered += tag.RowsAffected()
			if tag.RowsAffected() < vectorBatch || ctx.Err() != nil {
				break
			}
		}
	}
	return entered, nil
}

// IndexVectors runs the vector indexer every interval until ctx ends.
func (srv *Server) IndexVectors(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		start := time.Now()
		n, err := srv.store.indexPendingVectors(ctx, srv.router.Embedder().Name())
		switch {
		case err != nil && ctx.Err() == nil:
			srv.log.WarnContext(ctx, "index pending vectors", "error", err)
		case n > 0:
			srv.log.InfoContext(ctx, "pending vectors entered the HNSW index", slog.Int64("chunks", n), slog.Duration("took", time.Since(start)))
		}
	})
}
