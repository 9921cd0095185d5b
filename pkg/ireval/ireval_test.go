package ireval_test

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/ireval"
)

const docs = `.I 1
.T
Dewey Decimal
.A
Comaromi, J.P.
.W
   A history of the DDC.
.X
1	5	1
.I 2
.T Inline title
.W
Second abstract,
two lines.
`

func TestReadRecords(t *testing.T) {
	recs, err := ireval.ReadRecords(strings.NewReader(docs))
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, "1", recs[0].ID)
	require.Equal(t, "Dewey Decimal\n\nA history of the DDC.", ireval.DocumentText(recs[0]))
	require.Equal(t, "Inline title\n\nSecond abstract,\ntwo lines.", ireval.DocumentText(recs[1]))
	require.Equal(t, "Second abstract,\ntwo lines.", ireval.QueryText(recs[1]))

	_, err = ireval.ReadRecords(strings.NewReader("stray text\n.I 1\n"))
	require.ErrorContains(t, err, "line 1")
	_, err = ireval.ReadRecords(strings.NewReader(".I\n"))
	require.ErrorContains(t, err, ".I without an id")
}

func TestReadQrels(t *testing.T) {
	q, err := ireval.ReadQrels(strings.NewReader("     1     28\t0\t0.000000\n1 35 0 0\n\n2 7 0 0\n"))
	require.NoError(t, err)
	require.Equal(t, ireval.Qrels{"1": {"28": true, "35": true}, "2": {"7": true}}, q)
	_, err = ireval.ReadQrels(strings.NewReader("1\n"))
	require.Error(t, err)
}

func TestMetrics(t *testing.T) {
	rel := map[string]bool{"a": true, "b": true}
	tests := []struct {
		ranked            []string
		ndcg, recall, mrr float64
	}{
		{[]string{"a", "b", "x"}, 1, 1, 1},
		{[]string{"x", "a", "b"}, (1/math.Log2(3) + 1/math.Log2(4)) / (1 + 1/math.Log2(3)), 1, 0.5},
		{[]string{"x", "y", "z"}, 0, 0, 0},
		{[]string{"x", "y", "a"}, (1 / math.Log2(4)) / (1 + 1/math.Log2(3)), 0.5, 1.0 / 3},
	}
	for _, tt := range tests {
		require.InDelta(t, tt.ndcg, ireval.NDCG(tt.ranked, rel, 3), 1e-9, "%v", tt.ranked)
		require.InDelta(t, tt.recall, ireval.Recall(tt.ranked, rel, 3), 1e-9)
		require.InDelta(t, tt.mrr, ireval.ReciprocalRank(tt.ranked, rel), 1e-9)
	}
	require.InDelta(t, 0.5, ireval.Recall([]string{"a", "x"}, rel, 1), 1e-9, "cut at k")
}

func TestEvaluateAveragesJudgedQueriesOnly(t *testing.T) {
	queries := []ireval.Record{{ID: "1", Fields: map[string]string{"W": "q1"}}, {ID: "2", Fields: map[string]string{"W": "q2"}}, {ID: "3", Fields: map[string]string{"W": "unjudged"}}}
	qrels := ireval.Qrels{"1": {"a": true}, "2": {"b": true}}
	answers := map[string][]string{"q1": {"a", "a", "x"}, "q2": {"x", "b"}}
	rep, err := ireval.Evaluate(context.Background(), queries, qrels, func(_ context.Context, q string) ([]string, error) { return answers[q], nil }, 10)
	require.NoError(t, err)
	require.Equal(t, 2, rep.Queries)
	require.InDelta(t, 0.75, rep.MRR, 1e-9)
	require.InDelta(t, (1+1/math.Log2(3))/2, rep.NDCG, 1e-9)
	_, err = ireval.Evaluate(context.Background(), queries, ireval.Qrels{"9": {"a": true}}, nil, 10)
	require.ErrorContains(t, err, "no query has relevance judgements")
}
