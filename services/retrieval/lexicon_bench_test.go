package retrieval

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// BenchmarkRank prices the lexical arm alone, in memory, on 100k synthetic chunks shaped
// like make bench's (400 topics of 25 words, 200 common words, 40-80 words a chunk).
func BenchmarkRank(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	word := func(i int) string { return fmt.Sprintf("w%04d", i) }
	text := func(topic, n int) []string {
		out := make([]string, n)
		for i := range out {
			if rng.Float64() < 0.7 {
				out[i] = word(200 + topic*25 + rng.IntN(25))
			} else {
				out[i] = word(rng.IntN(200))
			}
		}
		return out
	}
	ch := indexChanges{full: true}
	for i := range 100_000 {
		words := text(i%400, 40+rng.IntN(40))
		tf := map[string]int{}
		for _, w := range words {
			tf[w]++
		}
		c := indexedChunk{id: fmt.Sprintf("doc-%d:0", i), document: fmt.Sprintf("doc-%d", i), length: len(words)}
		for t, n := range tf {
			c.terms, c.freqs = append(c.terms, t), append(c.freqs, int32(n))
		}
		ch.chunks = append(ch.chunks, c)
	}
	ci := &corpusIndex{compactAfter: 4096}
	ci.apply(ch)
	for _, size := range []struct {
		name     string
		min, max int
	}{{"short", 4, 8}, {"long", 30, 40}} {
		queries := make([]map[string]float64, 100)
		for i := range queries {
			queries[i] = map[string]float64{}
			for _, w := range text(rng.IntN(400), size.min+rng.IntN(size.max-size.min+1)) {
				queries[i][w]++
			}
		}
		b.Run(size.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				hits, _ := ci.rank(queries[i%len(queries)], bm25K1, bm25B, 100)
				i++
				if len(hits) == 0 || !slices.IsSortedFunc(hits, func(a, b lexHit) int { return -cmpScore(a.score, b.score) }) {
					b.Fatal("no hits or not best first")
				}
			}
		})
	}
}

func cmpScore(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
