package retrieval

import (
	"math"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestQueryTermsKeepFrequencies(t *testing.T) {
	terms, qtf := queryTerms("Retrieval of documents: document retrieval systems and retrieving")
	require.Equal(t, []string{"retriev", "document", "system"}, terms)
	require.Equal(t, map[string]int{"retriev": 3, "document": 2, "system": 1}, qtf)
}

func TestQTFWeight(t *testing.T) {
	require.Equal(t, 1.0, qtfWeight(3, 0), "k3 0: each distinct term once")
	require.Equal(t, 3.0, qtfWeight(3, math.Inf(1)), "k3 infinite: linear")
	require.InDelta(t, 9*3/11.0, qtfWeight(3, 8), 1e-12, "saturating")
	require.InDelta(t, 1.0, qtfWeight(1, 8), 1e-12, "one occurrence weighs one whatever k3")
}

func TestRelevanceModel(t *testing.T) {
	query := map[string]int{"gate": 2, "releas": 1}
	passages := []hit{
		{text: "Release gates: quality gate, security gate.", score: 2},
		{text: "The security review signs off every release.", score: 1},
		{text: "Risotto needs stock.", score: 0.5}, // beyond fbDocs
	}
	got := relevanceModel(query, passages, 2, 4, 0.5)
	var sum float64
	for _, w := range got {
		sum += w
	}
	require.InDelta(t, 1, sum, 1e-9, "a distribution")
	require.NotContains(t, got, "risotto", "only the first fbDocs passages count")
	require.Contains(t, got, "secur", "expanded with a feedback term")
	require.Len(t, got, 4, "the query's 2 terms and 4 feedback terms, 2 of them the query's")
	require.Greater(t, got["gate"], got["secur"], "the query keeps its weight")
}
