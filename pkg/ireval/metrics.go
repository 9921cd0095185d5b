package ireval

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// NDCG is binary-gain nDCG@k of a ranking.
func NDCG(ranked []string, relevant map[string]bool, k int) float64 {
	var dcg, ideal float64
	for i := 0; i < k && i < len(ranked); i++ {
		if relevant[ranked[i]] {
			dcg += 1 / math.Log2(float64(i+2))
		}
	}
	for i := 0; i < k && i < len(relevant); i++ {
		ideal += 1 / math.Log2(float64(i+2))
	}
	if ideal == 0 {
		return 0
	}
	return dcg / ideal
}

// Recall is the share of relevant documents in the first k.
func Recall(ranked []string, relevant map[string]bool, k int) float64 {
	if len(relevant) == 0 {
		return 0
	}
	found := 0
	for i := 0; i < k && i < len(ranked); i++ {
		if relevant[ranked[i]] {
			found++
		}
	}
	return float64(found) / float64(len(relevant))
}

// ReciprocalRank is 1/rank of the first relevant document, 0 when none is ranked.
func ReciprocalRank(ranked []string, relevant map[string]bool) float64 {
	for i, d := range ranked {
		if relevant[d] {
			return 1 / float64(i+1)
		}
	}
	return 0
}

// Report is the outcome of an evaluation.
type Report struct {
	Queries       int
	K             int
	NDCG, Recall  float64
	MRR           float64
	P50, P99, Max time.Duration
}

// SearchFunc returns document ids best first (duplicates are ignored after their first).
type SearchFunc func(ctx context.Context, query string) ([]string, error)

// Evaluate runs every judged query through search and averages the metrics.
func Evaluate(ctx context.Context, queries []Record, qrels Qrels, search SearchFunc, k int) (Report, error) {
	rep := Report{K: k}
	var latencies []time.Duration
	for _, q := range queries {
		rel := qrels[q.ID]
		if len(rel) == 0 {
			continue // unjudged: no ground truth
		}
		start := time.Now()
		ranked, err := search(ctx, QueryText(q))
		if err != nil {
			return rep, fmt.Errorf("query %s: %w", q.ID, err)
		}
		latencies = append(latencies, time.Since(start))
		ranked = dedupe(ranked)
		rep.Queries++
		rep.NDCG += NDCG(ranked, rel, k)
		rep.Recall += Recall(ranked, rel, k)
		rep.MRR += ReciprocalRank(ranked, rel)
	}
	if rep.Queries == 0 {
		return rep, fmt.Errorf("no query has relevance judgements: check that query ids match the judgements file")
	}
	n := float64(rep.Queries)
	rep.NDCG, rep.Recall, rep.MRR = rep.NDCG/n, rep.Recall/n, rep.MRR/n
	slices.Sort(latencies)
	rep.P50 = latencies[len(latencies)/2]
	rep.P99 = latencies[min(len(latencies)-1, len(latencies)*99/100)]
	rep.Max = latencies[len(latencies)-1]
	return rep, nil
}

func dedupe(ids []string) []string {
	seen := map[string]bool{}
	out := ids[:0:0]
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}
