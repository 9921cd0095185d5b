package retrieval

import (
	"fmt"
	"math"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
)

// RankingConfig is a local_pgvector corpus's ranking settings in
// provider_config_json.retrieval; a nil field takes the default (ADR 0007).
type RankingConfig struct {
	// LexicalWeight and VectorWeight scale BM25's and the vector arm's reciprocal ranks
	// in the fusion (lexical_weight, vector_weight: 0 to 10, not both 0).
	LexicalWeight, VectorWeight *float64
	// CandidateDepth is how many candidates each arm ranks before fusion
	// (candidate_depth: 10 to 1000).
	CandidateDepth *int
	// Feedback turns pseudo-relevance feedback (RM3) on or off (feedback).
	Feedback *bool
}

// The ranking settings' JSON names and bounds.
const (
	fieldLexicalWeight  = "lexical_weight"
	fieldVectorWeight   = "vector_weight"
	fieldCandidateDepth = "candidate_depth"
	fieldFeedback       = "feedback"
	maxFusionWeight     = 10
	minCandidateDepth   = 10
	maxCandidateDepth   = 1000
)

var rankingFields = []string{fieldLexicalWeight, fieldVectorWeight, fieldCandidateDepth, fieldFeedback}

// Defaults of the ranking settings and the fixed parameters (ADR 0007 has the measurements).
const (
	defaultLexicalWeight = 1.0
	defaultFeedback      = false
	// RM3 with the usual parameters: 10 passages, 10 terms, half the weight to the query.
	fbDocs           = 10
	fbTerms          = 10
	fbOriginalWeight = 0.5
)

// defaultK3 leaves query term frequency unsaturated: a term said twice weighs twice, as
// in Lucene, bleve and Anserini, where a repeated term is a repeated clause.
var defaultK3 = math.Inf(1)

// defaultVectorWeight is the vector arm's weight in the fusion: none for the offline
// hashed embedder, whose vectors restate the lexical evidence with hash noise (on CISI
// they cost nDCG@10 at every weight tried, ADR 0007), equal to BM25's for a learned one.
func defaultVectorWeight(embedder string) float64 {
	if embedder == HashEmbedderName {
		return 0
	}
	return 1
}

// defaultCandidateDepth is how many candidates each arm ranks for topK results.
func defaultCandidateDepth(topK int) int { return min(max(50, 5*topK), 250) }

func parseRanking(r map[string]any) (RankingConfig, error) {
	var rc RankingConfig
	for _, f := range []string{fieldLexicalWeight, fieldVectorWeight} {
		v, present := r[f]
		if !present {
			continue
		}
		x, ok := v.(float64)
		if !ok || math.IsNaN(x) || x < 0 || x > maxFusionWeight {
			return rc, invalidConfig(retrievalField+"."+f, fmt.Sprintf("must be a number from 0 to %d", maxFusionWeight))
		}
		if f == fieldLexicalWeight {
			rc.LexicalWeight = &x
		} else {
			rc.VectorWeight = &x
		}
	}
	if rc.LexicalWeight != nil && *rc.LexicalWeight == 0 && (rc.VectorWeight == nil || *rc.VectorWeight == 0) {
		return rc, invalidConfig(retrievalField+"."+fieldVectorWeight, "must be above 0 when lexical_weight is 0 (a search needs one arm)")
	}
	if v, present := r[fieldCandidateDepth]; present {
		n, err := integer(v)
		x, isNumber := v.(float64)
		if err == nil && (n < minCandidateDepth || n > maxCandidateDepth) || err != nil && isNumber && x == math.Trunc(x) {
			err = fmt.Errorf("must be %d to %d", minCandidateDepth, maxCandidateDepth)
		}
		if err != nil {
			return rc, invalidConfig(retrievalField+"."+fieldCandidateDepth, err.Error())
		}
		rc.CandidateDepth = &n
	}
	if v, present := r[fieldFeedback]; present {
		b, ok := v.(bool)
		if !ok {
			return rc, invalidConfig(retrievalField+"."+fieldFeedback, "must be a boolean, not "+jsonType(v))
		}
		rc.Feedback = &b
	}
	return rc, nil
}

// addJSON writes the settings that were set into r.
func (rc RankingConfig) addJSON(r map[string]any) {
	if rc.LexicalWeight != nil {
		r[fieldLexicalWeight] = *rc.LexicalWeight
	}
	if rc.VectorWeight != nil {
		r[fieldVectorWeight] = *rc.VectorWeight
	}
	if rc.CandidateDepth != nil {
		r[fieldCandidateDepth] = *rc.CandidateDepth
	}
	if rc.Feedback != nil {
		r[fieldFeedback] = *rc.Feedback
	}
}

// params are the effective parameters of a search for topK results in a corpus whose
// chunks embedder embedded.
func (rc RankingConfig) params(topK int, embedder string) rankParams {
	p := rankParams{
		k1: bm25K1, b: bm25B, k3: defaultK3,
		lexicalWeight: valueOr(rc.LexicalWeight, defaultLexicalWeight),
		vectorWeight:  valueOr(rc.VectorWeight, defaultVectorWeight(embedder)),
		depth:         valueOr(rc.CandidateDepth, defaultCandidateDepth(topK)),
		feedback:      valueOr(rc.Feedback, defaultFeedback),
		fbDocs:        fbDocs, fbTerms: fbTerms, fbOriginalWeight: fbOriginalWeight,
	}
	return p
}

// settings are the effective settings of a search for topK results, as Retrieve reports them.
func (rc RankingConfig) settings(topK int, embedder string) *retrievalv1.RankingSettings {
	p := rc.params(topK, embedder)
	return &retrievalv1.RankingSettings{LexicalWeight: p.lexicalWeight, VectorWeight: p.vectorWeight,
		CandidateDepth: int32(max(p.depth, topK)), Feedback: p.feedback}
}

func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
