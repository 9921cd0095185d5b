package retrieval

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
)

// TestPendingVectorsEnterTheIndex: chunks are written outside the HNSW index; the
// indexer enters those of corpora that weigh vectors and leaves the others; the vector
// arm finds a chunk before and after it enters.
func TestPendingVectorsEnterTheIndex(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: SessionParams()}, Migrations())
	store := NewStore(pool)
	emb := NewHashEmbedder(DefaultDim)
	cfg, err := ParseProviderConfig(map[string]any{"retrieval": map[string]any{"vector_weight": 0.5}})
	require.NoError(t, err)
	_, _, err = store.UpdateCorpus(ctx, "t1", "vectors", corpusPatch{Config: &cfg}, true)
	require.NoError(t, err)
	_, _, err = store.UpdateCorpus(ctx, "t1", "lexical", corpusPatch{}, true)
	require.NoError(t, err)
	for _, corpus := range []string{"vectors", "lexical"} {
		for d := range vectorBatch/2 + 3 { // more than one batch of chunks
			doc := fmt.Sprintf("d%d", d)
			rows := []chunkRow{testRow(t, emb, doc, 0, fmt.Sprintf("release gate %d needs a signed review", d)),
				testRow(t, emb, doc, 1, fmt.Sprintf("rollback drill number %d for the canary", d))}
			_, err := store.replaceDocuments(ctx, "t1", corpus, emb.Name(), []string{doc}, rows, nil)
			require.NoError(t, err)
		}
	}
	pending := func(corpus string) (n int) {
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM retrieval.chunks WHERE corpus_id = $1 AND NOT vector_indexed`, corpus).Scan(&n))
		return n
	}
	total := 2 * (vectorBatch/2 + 3)
	require.Equal(t, total, pending("vectors"))
	require.Equal(t, total, pending("lexical"))

	local := NewLocalIndex(store, emb)
	corpus, err := store.GetCorpus(ctx, "t1", "vectors")
	require.NoError(t, err)
	search := func() []hit {
		hits, err := local.retrieve(ctx, "t1", corpus, "rollback drill for the canary", 3)
		require.NoError(t, err)
		require.Len(t, hits, 3)
		require.Greater(t, hits[0].score, 1.0/(rrfK+1), "found by both arms: more than the lexical best rank alone")
		return hits
	}
	before := search()

	n, err := store.indexPendingVectors(ctx, emb.Name())
	require.NoError(t, err)
	require.EqualValues(t, total, n)
	require.Zero(t, pending("vectors"))
	require.Equal(t, total, pending("lexical"), "a corpus that does not weigh vectors stays out of the HNSW index")
	after := search()
	require.Equal(t, before[0].chunkID, after[0].chunkID)

	n, err = store.indexPendingVectors(ctx, emb.Name())
	require.NoError(t, err)
	require.Zero(t, n, "nothing left")
}
