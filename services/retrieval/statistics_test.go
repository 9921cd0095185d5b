package retrieval

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/textproc"
)

// TestBulkWritesRefreshStatistics: after enough chunks are written the index is
// analyzed, and below the threshold it is not.
func TestBulkWritesRefreshStatistics(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: SessionParams()}, Migrations())
	store := NewStore(pool)
	store.planner.threshold = 20
	_, _, err := store.UpdateCorpus(ctx, "t1", "c1", corpusPatch{}, true)
	require.NoError(t, err)
	emb := NewHashEmbedder(DefaultDim)
	write := func(doc, text string) {
		v, _ := emb.EmbedDocuments(ctx, []string{text})
		tf := map[string]int{}
		for _, term := range textproc.Terms(text) {
			tf[term]++
		}
		_, err := store.replaceDocuments(ctx, "t1", "c1", emb.Name(), []string{doc}, []chunkRow{{id: doc + ":0", document: doc, text: text, metadata: []byte("{}"), terms: tf, length: len(tf), vector: v[0]}}, nil)
		require.NoError(t, err)
	}
	write("small", "a few distinct words only")
	did, err := store.RefreshStatistics(ctx)
	require.NoError(t, err)
	require.False(t, did, "below the threshold")

	for i := range 30 {
		write(fmt.Sprintf("d%d", i), fmt.Sprintf("document %d talks about release gates, load tests, security reviews and launch criteria number %d", i, i*7))
	}
	did, err = store.RefreshStatistics(ctx)
	require.NoError(t, err)
	require.True(t, did)
	require.Eventually(t, func() bool {
		var analyzed *time.Time
		require.NoError(t, pool.QueryRow(ctx, `SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = 'retrieval' AND relname = 'chunks'`).Scan(&analyzed))
		return analyzed != nil
	}, 5*time.Second, 20*time.Millisecond)
	did, err = store.RefreshStatistics(ctx)
	require.NoError(t, err)
	require.False(t, did, "the counter restarts after an analyze")
}

// Statistics read while documents come and go may count a term in more chunks than the
// corpus holds: the idf stays finite and non-negative, and so the query vector has no
// NaN (pgvector refuses one, which a run saw as INTERNAL).
func TestIDFOfStatisticsInFlux(t *testing.T) {
	for _, c := range []struct{ n, df int64 }{{0, 0}, {0, 1}, {2, 5}, {1, 1}, {10, 3}, {1 << 40, 1}} {
		idf := bm25IDF(c.n, c.df)
		require.False(t, math.IsNaN(idf) || math.IsInf(idf, 0) || idf < 0, "bm25IDF(%d, %d) = %v", c.n, c.df, idf)
	}
	emb := NewHashEmbedder(DefaultDim)
	v, err := emb.EmbedQuery(context.Background(), "gate gate gate release release gate rollout", func(string) float64 { return bm25IDF(2, 9) })
	require.NoError(t, err)
	for i, x := range v {
		require.False(t, math.IsNaN(float64(x)) || math.IsInf(float64(x), 0), "component %d is %v", i, x)
	}
}
