package retrieval

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"cloud.google.com/go/auth"
	"google.golang.org/genai"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Embedding error codes.
const (
	CodeEmbeddingsAuth  = "EMBEDDINGS_AUTH_ERROR"
	CodeEmbeddingsError = "EMBEDDINGS_ERROR"
)

// VertexEmbedderConfig configures embeddings on Vertex AI.
type VertexEmbedderConfig struct {
	Project, Location, Model string
	Dim                      int
	// BaseURL and Credentials are for tests and private endpoints; production leaves them
	// empty (the regional endpoint, application default credentials).
	BaseURL     string
	Credentials *auth.Credentials
}

// VertexEmbedder embeds with a Vertex AI text embedding model through google.golang.org/genai.
type VertexEmbedder struct {
	client *genai.Client
	model  string
	dim    int
}

// vertexBatch is how many texts one request carries (the API accepts up to 250).
const vertexBatch = 100

// NewVertexEmbedder creates the client; missing credentials fail here, once, with what to set.
func NewVertexEmbedder(ctx context.Context, c VertexEmbedderConfig) (*VertexEmbedder, error) {
	cc := &genai.ClientConfig{Backend: genai.BackendVertexAI, Project: c.Project, Location: c.Location, Credentials: c.Credentials}
	if c.BaseURL != "" {
		cc.HTTPOptions.BaseURL = c.BaseURL
	}
	client, err := genai.NewClient(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("vertex embeddings: %w (set GOOGLE_APPLICATION_CREDENTIALS or run with a service account)", err)
	}
	return &VertexEmbedder{client: client, model: c.Model, dim: c.Dim}, nil
}

// Name is "vertex:<model>".
func (v *VertexEmbedder) Name() string { return "vertex:" + v.model }

// Dim is the requested output dimensionality.
func (v *VertexEmbedder) Dim() int { return v.dim }

// BatchSize is how many texts one request carries: upserts report progress after each.
func (v *VertexEmbedder) BatchSize() int { return vertexBatch }

// EmbedDocuments embeds chunk texts in batches.
func (v *VertexEmbedder) EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, 0, len(texts))
	for start := 0; start < len(texts); start += vertexBatch {
		vecs, err := v.embed(ctx, texts[start:min(start+vertexBatch, len(texts))], "RETRIEVAL_DOCUMENT")
		if err != nil {
			return nil, err
		}
		out = append(out, vecs...)
	}
	return out, nil
}

// EmbedQuery embeds a query; a learned model needs no idf weighting.
func (v *VertexEmbedder) EmbedQuery(ctx context.Context, text string, _ func(string) float64) ([]float32, error) {
	vecs, err := v.embed(ctx, []string{text}, "RETRIEVAL_QUERY")
	if err != nil {
		return nil, err
	}
	return vecs[0], nil
}

func (v *VertexEmbedder) embed(ctx context.Context, texts []string, task string) ([][]float32, error) {
	contents := make([]*genai.Content, len(texts))
	for i, t := range texts {
		contents[i] = genai.NewContentFromText(t, genai.RoleUser)
	}
	dim := int32(v.dim)
	res, err := v.client.Models.EmbedContent(ctx, v.model, contents, &genai.EmbedContentConfig{TaskType: task, OutputDimensionality: &dim})
	if err != nil {
		return nil, embeddingError(err)
	}
	if len(res.Embeddings) != len(texts) {
		return nil, apierr.New(codes.Unavailable, CodeEmbeddingsError, fmt.Sprintf("Vertex AI returned %d embeddings for %d texts", len(res.Embeddings), len(texts)))
	}
	out := make([][]float32, len(texts))
	for i, e := range res.Embeddings {
		if len(e.Values) != v.dim {
			return nil, apierr.New(codes.Unavailable, CodeEmbeddingsError, fmt.Sprintf("Vertex AI returned %d dimensions, expected %d", len(e.Values), v.dim))
		}
		out[i] = e.Values
	}
	return out, nil
}

func embeddingError(err error) error {
	var ae genai.APIError
	if errors.As(err, &ae) {
		if ae.Code == http.StatusUnauthorized || ae.Code == http.StatusForbidden {
			return apierr.New(codes.FailedPrecondition, CodeEmbeddingsAuth, "Vertex AI refused the credentials for embeddings", "status", ae.Status)
		}
		return apierr.New(codes.Unavailable, CodeEmbeddingsError, fmt.Sprintf("Vertex AI embeddings failed (%d %s)", ae.Code, ae.Status), "status", ae.Status)
	}
	return apierr.New(codes.Unavailable, CodeEmbeddingsError, "Vertex AI embeddings could not be reached")
}
