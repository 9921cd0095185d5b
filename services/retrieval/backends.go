package retrieval

import (
	"context"

	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

// NewEmbedder is the embedder EMBEDDINGS_PROVIDER names: hash (offline) or vertex.
func NewEmbedder(ctx context.Context, c Config) (Embedder, error) {
	if c.EmbeddingsProvider == "vertex" {
		return NewVertexEmbedder(ctx, VertexEmbedderConfig{Project: c.GoogleProject, Location: c.GoogleLocation, Model: c.EmbeddingsModel, Dim: c.EmbeddingsDim})
	}
	return NewHashEmbedder(DefaultDim), nil
}

// NewProviders is the router over every provider of this deployment: the local index
// over store (queries embedded with embedder), Bedrock with the AWS default credential
// chain and Vertex AI Search with Google's application default credentials, their calls
// under bedrockCalls and vertexCalls. The SDKs make one attempt each: retries are the
// policy's. Missing cloud credentials are reported per query with the provider's code,
// so that corpora on other providers keep working. Close the router to release Vertex.
func NewProviders(ctx context.Context, store *Store, embedder Embedder, bedrockCalls, vertexCalls *extcall.Client) *Router {
	return NewRouter(NewLocalIndex(store, embedder),
		providers.NewBedrock(ctx, providers.BedrockOptions{MaxAttempts: 1}), bedrockCalls,
		providers.NewVertex(providers.VertexOptions{}), vertexCalls)
}
