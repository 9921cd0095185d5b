package retrieval

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"
)

// statistics keeps the planner's statistics of the chunk index fresh after bulk writes.
// Autovacuum analyzes eventually (every minute at best); a corpus loaded in seconds is
// queried with plans made for empty tables until then, and those plans are 6-20x slower
// (ADR 0007). Writers count the chunks they add; Run analyzes once enough have been.
type statistics struct {
	written   atomic.Int64
	threshold int64
}

// defaultAnalyzeThreshold is how many chunk rows make an analyze worthwhile.
const defaultAnalyzeThreshold = 2000

func (s *statistics) add(n int) { s.written.Add(int64(n)) }

// RefreshStatistics analyzes the chunk index when enough rows were written since the
// last time, and reports whether it did.
func (s *Store) RefreshStatistics(ctx context.Context) (bool, error) {
	n := s.planner.written.Load()
	if n < s.planner.threshold {
		return false, nil
	}
	if _, err := s.pool.Exec(ctx, `ANALYZE retrieval.chunks, retrieval.index_log`); err != nil {
		return false, fmt.Errorf("analyze chunk index: %w", err)
	}
	s.planner.written.Add(-n)
	return true, nil
}

// Run refreshes statistics, and forgets the lexical indexes of corpora idle for
// indexIdle, every interval until ctx ends.
func (srv *Server) Run(ctx context.Context, interval time.Duration) {
	every(ctx, interval, func() {
		if n := srv.router.local.lex.evictIdle(time.Now(), indexIdle); n > 0 {
			srv.log.InfoContext(ctx, "idle corpora's lexical indexes left memory", slog.Int("corpora", n), slog.Duration("idle", indexIdle))
		}
		start := time.Now()
		did, err := srv.store.RefreshStatistics(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			srv.log.WarnContext(ctx, "refresh chunk index statistics", "error", err)
		case did:
			srv.log.InfoContext(ctx, "chunk index analyzed after bulk writes", slog.Duration("took", time.Since(start)))
		}
	})
}

// every runs f every interval until ctx ends.
func every(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}
