package retrieval

import (
	"context"
	"fmt"
	"math"
	"sort"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// LocalIndex searches the local_pgvector provider's chunks: BM25 over an in-memory copy
// of each corpus's postings (lexicon.go) and cosine similarity over HNSW, fused by
// reciprocal rank, tenant and corpus filtered inside the index queries.
type LocalIndex struct {
	store    *Store
	embedder Embedder
	lex      *lexicon
}

// NewLocalIndex searches store's chunks, embedding queries with embedder (the one that
// embedded the chunks).
func NewLocalIndex(store *Store, embedder Embedder) *LocalIndex {
	return &LocalIndex{store: store, embedder: embedder, lex: newLexicon()}
}

// commonTermShare: terms in more than this share of a corpus's chunks, and in more than
// commonTermPostings chunks, are left out of the lexical arm: their idf is near zero and
// scoring them costs the most. At least the rarest query term always stays. A small
// corpus keeps all its terms, so that BM25 there is exact (a tiny corpus whose every term
// is "common" would otherwise miss documents).
const (
	commonTermShare    = 0.5
	commonTermPostings = 1000
)

func (l *LocalIndex) retrieve(ctx context.Context, tenant string, corpus CorpusRecord, query string, topK int) ([]hit, error) {
	ci := l.lex.index(tenant, corpus.CorpusID)
	read := func(ctx context.Context, have *indexVersion) (indexChanges, error) {
		return l.store.readIndex(ctx, tenant, corpus.CorpusID, have)
	}
	if _, loaded := ci.current(); !loaded {
		if err := ci.catchUp(ctx, indexVersion{}, read); err != nil {
			return nil, err
		}
	}
	// The copy in memory may be behind the corpus (another replica wrote since): the read
	// of the hits says so, and the search runs again on a copy caught up to at least what
	// that read saw, which is newer than the query.
	for attempt := 0; ; attempt++ {
		hits, searched, seen, err := l.search(ctx, ci, tenant, corpus, query, topK)
		switch {
		case err != nil:
			return nil, err
		case !seen.updatedAt.Equal(corpus.UpdatedAt):
			return nil, errStaleCorpus // searched with settings that changed meanwhile
		case seen.version == searched || attempt > 0:
			return hits, nil
		}
		if err := ci.catchUp(ctx, seen.version, read); err != nil {
			return nil, err
		}
	}
}

// search runs the query once on the copy in memory and reads its hits; it returns the
// version it searched and the corpus's state its read saw.
func (l *LocalIndex) search(ctx context.Context, ci *corpusIndex, tenant string, corpus CorpusRecord, query string, topK int) (hits []hit, searched indexVersion, seen fetched, err error) {
	p := corpus.Config.Ranking.params(topK, l.embedder.Name())
	terms, qtf := queryTerms(query)
	// The corpus's embedder, and the document frequencies only when the query vector
	// weighs by them: the lexical arm reads its own under the same lock as its search.
	var idfTerms []string
	if p.vectorWeight > 0 {
		idfTerms = terms
	}
	st, _ := ci.stats(idfTerms)
	if st.embedder != "" && (st.embedder != l.embedder.Name() || st.dim != l.embedder.Dim()) {
		return nil, searched, seen, apierr.New(codes.FailedPrecondition, CodeEmbedderMismatch,
			fmt.Sprintf("corpus %s is indexed with %s (%d dimensions) but this service embeds queries with %s (%d)",
				corpus.CorpusID, st.embedder, st.dim, l.embedder.Name(), l.embedder.Dim()), "corpus_id", corpus.CorpusID)
	}
	var vec []float32
	if p.vectorWeight > 0 && st.chunks > 0 {
		idf := func(t string) float64 { return bm25IDF(st.chunks, st.df[t]) }
		if vec, err = l.embedder.EmbedQuery(ctx, query, idf); err != nil {
			return nil, searched, seen, fmt.Errorf("embed query: %w", err)
		}
		if isZero(vec) {
			vec = nil // nothing to compare: cosine distance to a zero vector is undefined
		}
	}
	weights := make(map[string]float64, len(qtf))
	for t, n := range qtf {
		weights[t] = qtfWeight(float64(n), p.k3)
	}
	first := topK
	if p.feedback {
		first = max(topK, p.fbDocs)
	}
	hits, searched, seen, err = l.hybrid(ctx, ci, tenant, corpus.CorpusID, weights, vec, p, first)
	if err != nil || !p.feedback || len(hits) == 0 {
		return trimHits(hits, topK), searched, seen, err
	}
	// Pseudo-relevance feedback: a second search with the query expanded by the terms of
	// the first one's best passages.
	expanded := relevanceModel(qtf, hits, p.fbDocs, p.fbTerms, p.fbOriginalWeight)
	return l.hybrid(ctx, ci, tenant, corpus.CorpusID, expanded, vec, p, topK)
}

// hybrid ranks the weighted query terms in memory and reads the hits fused with the
// vector arm.
func (l *LocalIndex) hybrid(ctx context.Context, ci *corpusIndex, tenant, corpus string, weights map[string]float64, vec []float32, p rankParams, topK int) ([]hit, indexVersion, fetched, error) {
	depth := max(p.depth, topK)
	var lexical []lexHit
	var searched indexVersion
	if p.lexicalWeight > 0 {
		lexDepth := depth
		if vec == nil {
			lexDepth = topK // ranks past topK cannot be fused into the first topK
		}
		lexical, searched = ci.rank(weights, p.k1, p.b, lexDepth)
	} else {
		searched, _ = ci.current()
	}
	ids := make([]string, len(lexical))
	for i, h := range lexical {
		ids[i] = h.chunkID
	}
	seen, err := l.store.fetch(ctx, tenant, corpus, fetchQuery{lexical: ids, vector: vec, dim: l.embedder.Dim(), depth: depth, topK: topK,
		lexicalWeight: p.lexicalWeight, vectorWeight: p.vectorWeight})
	return seen.hits, searched, seen, err
}

func trimHits[T any](h []T, n int) []T {
	if len(h) > n {
		return h[:n]
	}
	return h
}

// bm25IDF is Okapi BM25's idf, never negative. A term absent from the corpus gets the
// idf of a term seen once; a document frequency above the chunk count (statistics read
// while they changed) counts as every chunk.
func bm25IDF(n, df int64) float64 {
	df = max(df, 1)
	n = max(n, df)
	return math.Log(1 + (float64(n)-float64(df)+0.5)/(float64(df)+0.5))
}

// lexicalTerms are the query terms present in the corpus, without the very common ones
// (unless nothing else is left), each with its weight in the query times its idf.
func lexicalTerms(weights map[string]float64, st corpusStats) ([]string, []float64) {
	type weighted struct {
		term string
		df   int64
	}
	var present []weighted
	for t := range weights {
		if df := st.df[t]; df > 0 {
			present = append(present, weighted{t, df})
		}
	}
	sort.Slice(present, func(i, j int) bool {
		return present[i].df < present[j].df || present[i].df == present[j].df && present[i].term < present[j].term
	})
	var outT []string
	var outW []float64
	for i, w := range present {
		if i > 0 && float64(w.df) > commonTermShare*float64(st.chunks) && w.df > commonTermPostings {
			break
		}
		outT = append(outT, w.term)
		outW = append(outW, weights[w.term]*bm25IDF(st.chunks, w.df))
	}
	return outT, outW
}

func isZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// Search runs the local hybrid search without the RPC layer and returns the number of
// hits. The benchmark measures it beside Retrieve to price the gRPC path.
func (l *LocalIndex) Search(ctx context.Context, tenant, corpusID, query string, topK int) (int, error) {
	n := 0
	err := withFreshOnStale(func(fresh bool) error {
		corpus, err := l.store.searchCorpus(ctx, tenant, corpusID, fresh)
		if err != nil {
			return err
		}
		hits, err := l.retrieve(ctx, tenant, corpus, query, topK)
		n = len(hits)
		return err
	})
	return n, err
}
