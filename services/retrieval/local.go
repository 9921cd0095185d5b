package retrieval

import (
	"context"
	"fmt"
	"math"
	"sort"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/textproc"
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

// commonTermShare: terms in more than this share of a corpus's chunks are left out of
// the lexical arm (their idf is near zero and they would make BM25 score most of the
// corpus); at least the rarest query term always stays.
const commonTermShare = 0.5

func (l *LocalIndex) retrieve(ctx context.Context, tenant string, corpus CorpusRecord, query string, topK int) ([]hit, error) {
	terms := uniqueTerms(query)
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
	idf := func(t string) float64 { return bm25IDF(st.chunks, st.df[t]) }
	lexTerms, lexIDF := lexicalTerms(terms, st)
	vec, err := l.embedder.EmbedQuery(ctx, query, idf)
	if err != nil {
		return nil, fmt.Errorf("embed query: %w", err)
	}
	if isZero(vec) {
		vec = nil // nothing to compare: cosine distance to a zero vector is undefined
	}
	if len(lexTerms) == 0 && vec == nil {
		return nil, nil
	}
	return l.store.search(ctx, tenant, corpus.CorpusID, searchQuery{
		terms: lexTerms, idf: lexIDF, avgLen: st.avgLen, vector: vec, dim: l.embedder.Dim(),
		depth: min(max(50, 5*topK), 250), topK: topK,
	})
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
// (unless nothing else is left), with their idf.
func lexicalTerms(terms []string, st corpusStats) ([]string, []float64) {
	type weighted struct {
		term string
		df   int64
	}
	var present []weighted
	for _, t := range terms {
		if df := st.df[t]; df > 0 {
			present = append(present, weighted{t, df})
		}
	}
	sort.Slice(present, func(i, j int) bool {
		return present[i].df < present[j].df || present[i].df == present[j].df && present[i].term < present[j].term
	})
	var outT []string
	var outIDF []float64
	for i, w := range present {
		if i > 0 && float64(w.df) > commonTermShare*float64(st.chunks) {
			break
		}
		outT = append(outT, w.term)
		outIDF = append(outIDF, bm25IDF(st.chunks, w.df))
	}
	return outT, outIDF
}

func uniqueTerms(text string) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range textproc.Terms(text) {
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	return out
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
