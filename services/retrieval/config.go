package retrieval

import (
	"fmt"
	"slices"
)

// Config is the retrieval service's configuration, parsed from the environment.
type Config struct {
	// EmbeddingsProvider is hash (offline, deterministic; the default) or vertex.
	EmbeddingsProvider string `env:"EMBEDDINGS_PROVIDER" envDefault:"hash"`
	// EmbeddingsModel and EmbeddingsDim apply to vertex (text-embedding-005 gives 768 dimensions).
	EmbeddingsModel string `env:"EMBEDDINGS_MODEL" envDefault:"text-embedding-005"`
	EmbeddingsDim   int    `env:"EMBEDDINGS_DIM" envDefault:"768"`
	GoogleProject   string `env:"GOOGLE_CLOUD_PROJECT"`
	GoogleLocation  string `env:"GOOGLE_CLOUD_LOCATION" envDefault:"us-central1"`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	switch c.EmbeddingsProvider {
	case "hash":
	case "vertex":
		if c.GoogleProject == "" {
			return fmt.Errorf("GOOGLE_CLOUD_PROJECT: required when EMBEDDINGS_PROVIDER=vertex")
		}
		if !slices.Contains(indexedDims, c.EmbeddingsDim) {
			return fmt.Errorf("EMBEDDINGS_DIM: %d has no vector index (supported: %v)", c.EmbeddingsDim, indexedDims)
		}
	default:
		return fmt.Errorf("EMBEDDINGS_PROVIDER: %q is not hash or vertex", c.EmbeddingsProvider)
	}
	return nil
}
