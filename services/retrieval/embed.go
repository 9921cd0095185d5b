package retrieval

import (
	"context"
	"hash/fnv"
	"math"

	"github.com/nexusrag/nexusrag/pkg/textproc"
)

// Embedder turns text into vectors. Implementations are deterministic for a given name,
// so that a corpus indexed with one embedder is never queried with another.
type Embedder interface {
	// Name identifies the embedder and its dimension, recorded on every chunk.
	Name() string
	Dim() int
	EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error)
	// EmbedQuery embeds a query; idf, when not nil, weights each term by its rarity in
	// the corpus being searched.
	EmbedQuery(ctx context.Context, text string, idf func(term string) float64) ([]float32, error)
}

// HashEmbedder is the offline default: signed feature hashing of stemmed words and of
// adjacent word pairs, L2-normalized. It needs no model, carries real lexical signal
// (shared terms and phrases make vectors close) and is reproducible everywhere.
type HashEmbedder struct{ dim int }

// HashEmbedderName is recorded on chunks embedded by HashEmbedder.
const HashEmbedderName = "hash-v1"

// DefaultDim is the dimension of the offline embedder and of the chunk index.
const DefaultDim = 384

// pairWeight scales word-pair features relative to single words.
const pairWeight = 0.5

// NewHashEmbedder returns the offline embedder with dim dimensions.
func NewHashEmbedder(dim int) *HashEmbedder { return &HashEmbedder{dim: dim} }

// Name is "hash-v1".
func (h *HashEmbedder) Name() string { return HashEmbedderName }

// Dim is the vector length.
func (h *HashEmbedder) Dim() int { return h.dim }

// EmbedDocuments embeds each text with sublinear term frequency.
func (h *HashEmbedder) EmbedDocuments(_ context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	for i, t := range texts {
		out[i] = h.vector(textproc.Terms(t), nil)
	}
	return out, nil
}

// EmbedQuery embeds a query, idf-weighting its terms when idf is given.
func (h *HashEmbedder) EmbedQuery(_ context.Context, text string, idf func(string) float64) ([]float32, error) {
	return h.vector(textproc.Terms(text), idf), nil
}

func (h *HashEmbedder) vector(terms []string, idf func(string) float64) []float32 {
	v := make([]float64, h.dim)
	weight := func(t string) float64 {
		if idf == nil {
			return 1
		}
		return idf(t)
	}
	tf := map[string]float64{}
	for i, t := range terms {
		tf[t] += weight(t)
		if i > 0 {
			tf[terms[i-1]+" "+t] += pairWeight * math.Sqrt(weight(terms[i-1])*weight(t))
		}
	}
	for feature, w := range tf {
		idx, sign := h.slot(feature)
		v[idx] += sign * (1 + math.Log(1+w)) // sublinear: repetition counts, but less and less
	}
	return normalize(v)
}

// slot hashes a feature to an index and a sign (signed hashing keeps collisions from
// adding up in one direction).
func (h *HashEmbedder) slot(feature string) (int, float64) {
	f := fnv.New64a()
	f.Write([]byte(feature))
	sum := f.Sum64()
	sign := 1.0
	if sum>>63 == 1 {
		sign = -1
	}
	return int(sum % uint64(h.dim)), sign
}

func normalize(v []float64) []float32 {
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	out := make([]float32, len(v))
	if norm == 0 {
		return out
	}
	norm = math.Sqrt(norm)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}
