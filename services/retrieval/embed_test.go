package retrieval_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/services/retrieval"
)

func cosine(a, b []float32) float64 {
	var dot float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
	}
	return dot
}

func TestHashEmbedderCarriesSignal(t *testing.T) {
	ctx := context.Background()
	e := retrieval.NewHashEmbedder(retrieval.DefaultDim)
	docs, err := e.EmbedDocuments(ctx, []string{
		"Release gates for Agent 2.0: every gate must pass before launch.",
		"The testing strategy covers unit, integration and end-to-end tests.",
		"Quarterly revenue grew in the European market.",
	})
	require.NoError(t, err)
	q, err := e.EmbedQuery(ctx, "What are the release gates for Agent 2.0?", nil)
	require.NoError(t, err)
	require.Len(t, q, retrieval.DefaultDim)
	require.InDelta(t, 1.0, cosine(q, q), 1e-5, "unit length")
	require.Greater(t, cosine(q, docs[0]), cosine(q, docs[1]))
	require.Greater(t, cosine(q, docs[0]), cosine(q, docs[2]))
	require.Greater(t, cosine(q, docs[0]), 0.3)

	again, _ := e.EmbedDocuments(ctx, []string{"Release gates for Agent 2.0: every gate must pass before launch."})
	require.Equal(t, docs[0], again[0], "deterministic")

	// idf weighting lets the rare term dominate the common one.
	idf := func(term string) float64 {
		if term == "gate" {
			return 5
		}
		return 0.1
	}
	qw, _ := e.EmbedQuery(ctx, "release gates", idf)
	qu, _ := e.EmbedQuery(ctx, "release gates", nil)
	gateOnly, _ := e.EmbedDocuments(ctx, []string{"gates"})
	require.Greater(t, cosine(qw, gateOnly[0]), cosine(qu, gateOnly[0]))

	empty, _ := e.EmbedQuery(ctx, "the of and", nil)
	require.Equal(t, 0.0, cosine(empty, empty), "no terms, zero vector (never NaN)")
}
