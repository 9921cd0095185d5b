package retrieval

import (
	"context"
	"fmt"
	"math"
	"sort"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// LocalIndex searches the Postgres chunk index, the local_pgvector provider: BM25 over
// postings and cosine similarity over HNSW, fused by reciprocal rank, tenant and corpus
// filtered inside the index queries.
type LocalIndex struct {
	store    *Store
	embedder Embedder
}

// NewLocalIndex searches store's chunks, embedding queries with embedder (the one that
// embedded the chunks).
func NewLocalIndex(store *Store, embedder Embedder) *LocalIndex {
	return &LocalIndex{store: store, embedder: embedder}
}

// commonTermShare: terms in more than this share of a corpus's chunks, and in more
// chunks than one term's postings read (postingsPerTerm), are left out of the lexical arm:
// their idf is near zero and reading them costs the most. At least the rarest query term
// always stays. A small corpus keeps all its terms, so that BM25 there is exact (a tiny
// corpus whose every term is "common" would otherwise miss documents).
const commonTermShare = 0.5

func (l *LocalIndex) retrieve(ctx context.Context, tenant string, corpus CorpusRecord, query string, topK int) ([]hit, error) {
	p := corpus.Config.Ranking.params(topK, l.embedder.Name())
	terms, qtf := queryTerms(query)
	st, err := l.store.stats(ctx, tenant, corpus.CorpusID, terms)
	if err != nil {
		return nil, err
	}
	if st.chunks == 0 {
		return nil, nil
	}
	if st.embedder != "" && (st.embedder != l.embedder.Name() || st.dim != l.embedder.Dim()) {
		return nil, apierr.New(codes.FailedPrecondition, CodeEmbedderMismatch,
			fmt.Sprintf("corpus %s is indexed with %s (%d dimensions) but this service embeds queries with %s (%d)",
				corpus.CorpusID, st.embedder, st.dim, l.embedder.Name(), l.embedder.Dim()), "corpus_id", corpus.CorpusID)
	}
	var vec []float32
	if p.vectorWeight > 0 {
		idf := func(t string) float64 { return bm25IDF(st.chunks, st.df[t]) }
		if vec, err = l.embedder.EmbedQuery(ctx, query, idf); err != nil {
			return nil, fmt.Errorf("embed query: %w", err)
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
	hits, err := l.search(ctx, tenant, corpus.CorpusID, st, weights, vec, p, first)
	if err != nil || !p.feedback || len(hits) == 0 {
		return trimHits(hits, topK), err
	}
	// Pseudo-relevance feedback: a second search with the query expanded by the terms of
	// the first one's best passages.
	expanded := relevanceModel(qtf, hits, p.fbDocs, p.fbTerms, p.fbOriginalWeight)
	expTerms := make([]string, 0, len(expanded))
	for t := range expanded {
		expTerms = append(expTerms, t)
	}
	if st, err = l.store.stats(ctx, tenant, corpus.CorpusID, expTerms); err != nil {
		return nil, err
	}
	return l.search(ctx, tenant, corpus.CorpusID, st, expanded, vec, p, topK)
}

// search runs one hybrid search with the weighted query terms present in the corpus.
func (l *LocalIndex) search(ctx context.Context, tenant, corpus string, st corpusStats, weights map[string]float64, vec []float32, p rankParams, topK int) ([]hit, error) {
	var lexTerms []string
	var lexW []float64
	if p.lexicalWeight > 0 {
		lexTerms, lexW = lexicalTerms(weights, st)
	}
	if len(lexTerms) == 0 && vec == nil {
		return nil, nil
	}
	return l.store.search(ctx, tenant, corpus, searchQuery{
		terms: lexTerms, weights: lexW, avgLen: st.avgLen, vector: vec, dim: l.embedder.Dim(),
		depth: max(p.depth, topK), topK: topK, k1: p.k1, b: p.b, lexicalWeight: p.lexicalWeight, vectorWeight: p.vectorWeight,
	})
}

func trimHits(h []hit, n int) []hit {
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
		if i > 0 && float64(w.df) > commonTermShare*float64(st.chunks) && w.df > postingsPerTerm {
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

// LocalSearch runs the local hybrid search without the RPC layer and returns the number
// of hits. The benchmark measures it beside Retrieve to price the gRPC path.
func LocalSearch(ctx context.Context, store *Store, emb Embedder, tenant, corpusID, query string, topK int) (int, error) {
	corpus, err := store.GetCorpus(ctx, tenant, corpusID)
	if err != nil {
		return 0, err
	}
	hits, err := NewLocalIndex(store, emb).retrieve(ctx, tenant, corpus, query, topK)
	return len(hits), err
}
