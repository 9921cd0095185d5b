package retrieval

import (
	"math"
	"sort"

	"github.com/nexusrag/nexusrag/pkg/textproc"
)

// rankParams are the knobs of one local search: BM25's, the fusion's and pseudo-relevance
// feedback's. Corpus settings (RankingConfig) choose some of them; the rest are the
// literature's standard values (ADR 0007).
type rankParams struct {
	k1, b float64
	// k3 saturates query term frequency (Robertson et al., Okapi at TREC-3); 0 counts
	// each distinct query term once.
	k3                          float64
	lexicalWeight, vectorWeight float64
	depth                       int
	feedback                    bool
	fbDocs, fbTerms             int
	fbOriginalWeight            float64
}

// queryTerms are a query's distinct terms, in first-seen order, with their frequencies:
// long queries repeat what they are about.
func queryTerms(text string) ([]string, map[string]int) {
	qtf := map[string]int{}
	var terms []string
	for _, t := range textproc.Terms(text) {
		if qtf[t] == 0 {
			terms = append(terms, t)
		}
		qtf[t]++
	}
	return terms, qtf
}

// qtfWeight is BM25's query-term-frequency factor, (k3+1)qtf/(k3+qtf).
func qtfWeight(qtf float64, k3 float64) float64 {
	if k3 <= 0 {
		return 1
	}
	if math.IsInf(k3, 1) {
		return qtf
	}
	return (k3 + 1) * qtf / (k3 + qtf)
}

// relevanceModel is RM3 (Lavrenko and Croft's relevance model, interpolated with the
// query as in Abdul-Jaleel et al., UMass at TREC 2004): the top fbDocs passages' term
// distributions, weighted by their scores, give P(w|R); its fbTerms most likely terms are
// mixed with the query's own distribution, originalWeight to the query. It returns the
// new query's terms and weights (summing to 1).
func relevanceModel(query map[string]int, passages []hit, fbDocs, fbTerms int, originalWeight float64) map[string]float64 {
	if len(passages) > fbDocs {
		passages = passages[:fbDocs]
	}
	var scoreSum float64
	for _, p := range passages {
		scoreSum += p.score
	}
	rel := map[string]float64{}
	for _, p := range passages {
		terms := textproc.Terms(p.text)
		if len(terms) == 0 {
			continue
		}
		w := 1.0 / float64(len(passages))
		if scoreSum > 0 {
			w = p.score / scoreSum
		}
		for _, t := range terms {
			rel[t] += w / float64(len(terms))
		}
	}
	type tw struct {
		term string
		w    float64
	}
	ranked := make([]tw, 0, len(rel))
	for t, w := range rel {
		ranked = append(ranked, tw{t, w})
	}
	sort.Slice(ranked, func(i, j int) bool {
		return ranked[i].w > ranked[j].w || ranked[i].w == ranked[j].w && ranked[i].term < ranked[j].term
	})
	if len(ranked) > fbTerms {
		ranked = ranked[:fbTerms]
	}
	var relSum float64
	for _, r := range ranked {
		relSum += r.w
	}
	var qLen float64
	for _, n := range query {
		qLen += float64(n)
	}
	out := map[string]float64{}
	for t, n := range query {
		out[t] += originalWeight * float64(n) / qLen
	}
	for _, r := range ranked {
		if relSum > 0 {
			out[r.term] += (1 - originalWeight) * r.w / relSum
		}
	}
	return out
}
