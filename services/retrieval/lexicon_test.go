package retrieval

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/textproc"
)

// TestReplicasSearchWhatIsStored: two replicas' in-memory indexes of one corpus, through a
// random sequence of document writes and deletes (some compacting the index, some
// outrunning the index log), always rank exactly as BM25 over the rows in Postgres ranks,
// see every write as soon as it commits, and hold document frequencies equal to the
// stored ones.
func TestReplicasSearchWhatIsStored(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: SessionParams()}, Migrations())
	store := NewStore(pool)
	store.logKeep = 8 // a replica that sits out up to 16 writes may have to reload the corpus
	_, _, err := store.UpdateCorpus(ctx, "t1", "c1", corpusPatch{}, true)
	require.NoError(t, err)
	emb := NewHashEmbedder(DefaultDim)
	replicas := []*LocalIndex{NewLocalIndex(store, emb), NewLocalIndex(store, emb)}
	for _, r := range replicas {
		r.lex.compactAfter = 6
	}
	corpus, err := store.GetCorpus(ctx, "t1", "c1")
	require.NoError(t, err)

	rng := rand.New(rand.NewPCG(3, 5))
	vocab := strings.Fields("gate release rollback canary latency budget review security load test incident pager owner " +
		"schema migration index vector query corpus chunk tenant quota plan invoice webhook stream")
	words := func(n int) string {
		w := make([]string, n)
		for i := range w {
			w[i] = vocab[rng.IntN(len(vocab))]
		}
		return strings.Join(w, " ")
	}
	for step := range 160 {
		doc := fmt.Sprintf("d%d", rng.IntN(24))
		if rng.IntN(4) == 0 {
			_, err := store.deleteDocumentChunks(ctx, "t1", "c1", doc, 0)
			require.NoError(t, err)
		} else {
			var rows []chunkRow
			for i := range 1 + rng.IntN(3) {
				rows = append(rows, testRow(t, emb, doc, i, words(3+rng.IntN(12))))
			}
			_, err := store.replaceDocuments(ctx, "t1", "c1", emb.Name(), []string{doc}, rows, nil)
			require.NoError(t, err)
		}
		// Replica 0 searches after every write; replica 1 now and then, so that it
		// sometimes catches up from the log and sometimes has to reload.
		for i, r := range replicas {
			if i == 1 && rng.IntN(6) != 0 {
				continue
			}
			query := words(1 + rng.IntN(5))
			hits, err := r.retrieve(ctx, "t1", corpus, query, 5)
			require.NoError(t, err)
			want, score := referenceBM25(t, pool, query, corpus.Config.Ranking.params(5, emb.Name()).k3, 5)
			require.Len(t, hits, len(want), "step %d, replica %d, query %q", step, i, query)
			for k, h := range hits { // the same scores in the same order; ties (up to rounding) in any order
				require.InDelta(t, score[want[k]], score[h.chunkID], 1e-9, "step %d, replica %d, query %q: hit %d is %s, want %s",
					step, i, query, k, h.chunkID, want[k])
			}
			requireStoredStatistics(t, pool, r.lex.index("t1", "c1"))
		}
	}
	first, second := replicas[0].lex.index("t1", "c1"), replicas[1].lex.index("t1", "c1")
	require.Equal(t, 1, first.loads, "the replica that searches after every write loads once")
	require.Greater(t, first.catchUps, 100)
	require.Greater(t, first.compactions, 2)
	require.Greater(t, second.loads, 1, "the other outran the log now and then")
	require.Greater(t, second.catchUps, 2, "and caught up from it otherwise")
}

func testRow(t *testing.T, emb Embedder, doc string, ordinal int, text string) chunkRow {
	t.Helper()
	v, err := emb.EmbedDocuments(context.Background(), []string{text})
	require.NoError(t, err)
	terms := textproc.Terms(text)
	tf := map[string]int{}
	for _, term := range terms {
		tf[term]++
	}
	return chunkRow{id: fmt.Sprintf("%s:%d", doc, ordinal), document: doc, text: text, ordinal: ordinal, metadata: []byte("{}"),
		terms: tf, length: len(terms), vector: v[0]}
}

type storedChunk struct {
	id     string
	length int
	tf     map[string]int
}

func storedChunks(t *testing.T, pool *pgxpool.Pool) []storedChunk {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT chunk_id, term_count, terms, term_freqs FROM retrieval.chunks WHERE tenant_id = 't1' AND corpus_id = 'c1'`)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedChunk, error) {
		var c storedChunk
		var terms []string
		var freqs []int32
		err := r.Scan(&c.id, &c.length, &terms, &freqs)
		c.tf = map[string]int{}
		for i, term := range terms {
			c.tf[term] = int(freqs[i])
		}
		return c, err
	})
	require.NoError(t, err)
	return out
}

// referenceBM25 ranks the stored chunks by the lexical arm's definition, from scratch:
// the best k, and every chunk's score.
func referenceBM25(t *testing.T, pool *pgxpool.Pool, query string, k3 float64, k int) ([]string, map[string]float64) {
	t.Helper()
	chunks := storedChunks(t, pool)
	st := corpusStats{chunks: int64(len(chunks)), df: map[string]int64{}}
	var total int
	for _, c := range chunks {
		total += c.length
		for term := range c.tf {
			st.df[term]++
		}
	}
	if len(chunks) > 0 {
		st.avgLen = float64(total) / float64(len(chunks))
	}
	_, qtf := queryTerms(query)
	weights := map[string]float64{}
	for term, n := range qtf {
		weights[term] = qtfWeight(float64(n), k3)
	}
	terms, w := lexicalTerms(weights, st)
	type scored struct {
		id    string
		score float64
	}
	var ranked []scored
	all := map[string]float64{}
	for _, c := range chunks {
		var s float64
		for i, term := range terms {
			if tf := float64(c.tf[term]); tf > 0 {
				s += w[i] * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*float64(c.length)/max(st.avgLen, 1)))
			}
		}
		all[c.id] = s
		if s > 0 {
			ranked = append(ranked, scored{c.id, s})
		}
	}
	slices.SortFunc(ranked, func(a, b scored) int {
		if a.score != b.score {
			if a.score > b.score {
				return -1
			}
			return 1
		}
		return strings.Compare(a.id, b.id)
	})
	out := []string{}
	for _, r := range trimHits(ranked, k) {
		out = append(out, r.id)
	}
	return out, all
}

// requireStoredStatistics: the index's chunk count, length total and every document
// frequency equal what the stored chunks give.
func requireStoredStatistics(t *testing.T, pool *pgxpool.Pool, ci *corpusIndex) {
	t.Helper()
	chunks := storedChunks(t, pool)
	df := map[string]int64{}
	var total int64
	for _, c := range chunks {
		total += int64(c.length)
		for term := range c.tf {
			df[term]++
		}
	}
	ci.mu.RLock()
	defer ci.mu.RUnlock()
	require.Equal(t, len(chunks), ci.live)
	require.Equal(t, total, ci.total)
	got := map[string]int64{}
	for term, id := range ci.termIDs {
		if n := ci.lists[id].df; n != 0 {
			got[term] = int64(n)
		}
	}
	require.Equal(t, df, got)
}

// TestMaxScoreIsExact: the pruned, windowed scoring returns exactly what scoring every
// posting returns, at any depth, over many windows of slots, dead ones among them, with
// Zipf-distributed terms (a few in most chunks, most in few).
func TestMaxScoreIsExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 13))
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 1)), 1.1, 1, 3000)
	ci := &corpusIndex{compactAfter: 1 << 30}
	ch := indexChanges{full: true}
	for i := range 9000 {
		n := 5 + rng.IntN(60)
		tf := map[string]int32{}
		for range n {
			tf[fmt.Sprintf("t%d", zipf.Uint64())]++
		}
		c := indexedChunk{id: fmt.Sprintf("d%d:0", i), document: fmt.Sprintf("d%d", i), length: n}
		for term, f := range tf {
			c.terms, c.freqs = append(c.terms, term), append(c.freqs, f)
		}
		ch.chunks = append(ch.chunks, c)
	}
	ci.apply(ch)
	var gone []string
	for i := 0; i < 9000; i += 1 + rng.IntN(7) {
		gone = append(gone, fmt.Sprintf("d%d", i))
	}
	ci.apply(indexChanges{documents: gone})
	require.Zero(t, ci.compactions, "dead slots stay in the lists")

	for q := range 200 {
		weights := map[string]float64{}
		for range 1 + rng.IntN(30) {
			weights[fmt.Sprintf("t%d", zipf.Uint64())]++
		}
		depth := []int{1, 5, 10, 100}[q%4]
		got, _ := ci.rank(weights, bm25K1, bm25B, depth)

		ci.mu.RLock()
		terms := make([]string, 0, len(weights))
		for term := range weights {
			terms = append(terms, term)
		}
		st := ci.statsLocked(terms)
		lexTerms, lexW := lexicalTerms(weights, st)
		all := map[string]float64{}
		var want []lexHit
		for s, sl := range ci.slots {
			if ci.lengths[s] < 0 {
				continue
			}
			var score float64
			for i, term := range lexTerms {
				l := ci.lists[ci.termIDs[term]]
				if k, ok := slices.BinarySearch(l.slots, uint32(s)); ok {
					tf := float64(l.tfs[k])
					score += lexW[i] * tf * (bm25K1 + 1) / (tf + bm25K1*(1-bm25B+bm25B*float64(ci.lengths[s])/st.avgLen))
				}
			}
			all[sl.id] = score
			if score > 0 {
				want = append(want, lexHit{sl.id, score})
			}
		}
		ci.mu.RUnlock()
		slices.SortFunc(want, func(a, b lexHit) int {
			if c := -cmpScore(a.score, b.score); c != 0 {
				return c
			}
			return strings.Compare(a.chunkID, b.chunkID)
		})
		want = trimHits(want, depth)
		require.Len(t, got, len(want), "query %d", q)
		for k := range want {
			require.InDelta(t, want[k].score, got[k].score, 1e-9, "query %d, depth %d, hit %d: %s, want %s", q, depth, k, got[k].chunkID, want[k].chunkID)
			require.InDelta(t, all[got[k].chunkID], got[k].score, 1e-9, "query %d: %s's score", q, got[k].chunkID)
		}
	}
}

// TestIdleIndexesLeaveMemory: an index not searched for the idle time is forgotten, and
// the next search of its corpus builds it again.
func TestIdleIndexesLeaveMemory(t *testing.T) {
	l := newLexicon()
	searched, idle := l.index("t1", "busy"), l.index("t1", "idle")
	now := time.Now()
	idle.used.Store(now.Add(-indexIdle - time.Second).UnixNano())
	require.Equal(t, 1, l.evictIdle(now, indexIdle))
	require.Same(t, searched, l.index("t1", "busy"))
	fresh := l.index("t1", "idle")
	require.NotSame(t, idle, fresh)
	_, loaded := fresh.current()
	require.False(t, loaded, "built again on its next search")
}
