package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEvalBleveRow: the peer's rows are computed, with both scorings, on a tiny SMART
// collection, through the same metric code as the platform's.
func TestEvalBleveRow(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "smart-tiny")
	docs, err := readRecords(filepath.Join(dir, "docs"))
	require.NoError(t, err)
	queries, err := readRecords(filepath.Join(dir, "queries"))
	require.NoError(t, err)
	o := evalOptions{docs: filepath.Join(dir, "docs"), queries: filepath.Join(dir, "queries"), qrels: filepath.Join(dir, "qrels"), k: 2}
	qrels, err := readQrels(o.qrels)
	require.NoError(t, err)
	for _, scoring := range bleveScorings {
		rep, err := evalBleve(context.Background(), docs, queries, qrels, scoring, o.k)
		require.NoError(t, err, scoring)
		require.Equal(t, 2, rep.Queries, scoring) // query 3 has no judgements
		require.InDelta(t, 1.0, rep.NDCG, 1e-9, scoring)
		require.InDelta(t, 1.0, rep.Recall, 1e-9, scoring)
		require.InDelta(t, 1.0, rep.MRR, 1e-9, scoring)
		require.Positive(t, rep.P50, scoring)
	}
	require.NotEqual(t, "v2", bleveVersion(), "the build records bleve's version")
}
