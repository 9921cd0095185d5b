package retrieval_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"cloud.google.com/go/auth"
	"github.com/stretchr/testify/require"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

type staticToken struct{}

func (staticToken) Token(context.Context) (*auth.Token, error) {
	return &auth.Token{Value: "test-token", Type: "Bearer"}, nil
}

// fakeVertexEmbeddings answers the :predict embeddings API with the offline embedder's
// 768-dimension vectors of whatever text it is sent, so results through it are meaningful.
type fakeVertexEmbeddings struct {
	status   int
	requests atomic.Int32
	lastPath string
	lastAuth string
}

func (f *fakeVertexEmbeddings) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.requests.Add(1)
	f.lastPath, f.lastAuth = r.URL.Path, r.Header.Get("Authorization")
	if f.status != 0 {
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(`{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}`))
		return
	}
	var req struct {
		Instances []struct {
			Content string `json:"content"`
		} `json:"instances"`
	}
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &req)
	emb := retrieval.NewHashEmbedder(768)
	var preds []map[string]any
	for _, in := range req.Instances {
		v, _ := emb.EmbedDocuments(r.Context(), []string{in.Content})
		preds = append(preds, map[string]any{"embeddings": map[string]any{"values": v[0]}})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"predictions": preds})
}

func newVertexEmbedder(t *testing.T, f http.Handler) *retrieval.VertexEmbedder {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	e, err := retrieval.NewVertexEmbedder(context.Background(), retrieval.VertexEmbedderConfig{
		Project: "my-project", Location: "us-central1", Model: "text-embedding-005", Dim: 768,
		BaseURL: srv.URL, Credentials: auth.NewCredentials(&auth.CredentialsOptions{TokenProvider: staticToken{}}),
	})
	require.NoError(t, err)
	return e
}

func TestVertexEmbedderThroughTheSDK(t *testing.T) {
	f := &fakeVertexEmbeddings{}
	e := newVertexEmbedder(t, f)
	texts := make([]string, 230) // three requests of at most 100
	for i := range texts {
		texts[i] = strings.Repeat("word ", i%7+1)
	}
	vecs, err := e.EmbedDocuments(context.Background(), texts)
	require.NoError(t, err)
	require.Len(t, vecs, 230)
	require.Len(t, vecs[0], 768)
	require.EqualValues(t, 3, f.requests.Load())
	require.Equal(t, "/v1beta1/projects/my-project/locations/us-central1/publishers/google/models/text-embedding-005:predict", f.lastPath)
	require.Equal(t, "Bearer test-token", f.lastAuth)
	require.Equal(t, "vertex:text-embedding-005", e.Name())

	denied := newVertexEmbedder(t, &fakeVertexEmbeddings{status: http.StatusForbidden})
	_, err = denied.EmbedQuery(context.Background(), "q", nil)
	require.Equal(t, retrieval.CodeEmbeddingsAuth, code(err))
}

func TestVertexEmbedderNeedsCredentials(t *testing.T) {
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/missing.json")
	_, err := retrieval.NewVertexEmbedder(context.Background(), retrieval.VertexEmbedderConfig{Project: "p", Location: "us-central1", Model: "text-embedding-005", Dim: 768})
	require.ErrorContains(t, err, "GOOGLE_APPLICATION_CREDENTIALS")
}

// TestCorpusKeepsItsEmbedder: a corpus indexed with Vertex embeddings (768 dimensions,
// their own HNSW index) answers queries, and refuses the offline embedder.
func TestCorpusKeepsItsEmbedder(t *testing.T) {
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: retrieval.SessionParams()}, retrieval.Migrations())
	vertexClient, _, _ := serve(t, pool, newVertexEmbedder(t, &fakeVertexEmbeddings{}), nil, nil)
	seed(t, vertexClient, "t1", "c1")
	hits := retrieve(t, vertexClient, "t1", "c1", "What are the release gates for Agent 2.0?", 3)
	require.Equal(t, "gates", hits[0].GetDocumentId())

	hashClient, _, _ := serve(t, pool, retrieval.NewHashEmbedder(retrieval.DefaultDim), nil, nil)
	_, err := hashClient.UpsertChunks(context.Background(), &retrievalv1.UpsertChunksRequest{TenantId: "t1", CorpusId: "c1", DocumentId: "x",
		Chunks: []*retrievalv1.ChunkInput{{Text: "mixing"}}})
	require.Equal(t, retrieval.CodeEmbedderMismatch, code(err))
	_, err = hashClient.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "gates"})
	require.Equal(t, retrieval.CodeEmbedderMismatch, code(err))
}

func TestRetrievalConfig(t *testing.T) {
	tests := []struct {
		c       retrieval.Config
		wantErr string
	}{
		{retrieval.Config{EmbeddingsProvider: "hash"}, ""},
		{retrieval.Config{EmbeddingsProvider: "vertex", GoogleProject: "p", EmbeddingsDim: 768}, ""},
		{retrieval.Config{EmbeddingsProvider: "vertex", EmbeddingsDim: 768}, "GOOGLE_CLOUD_PROJECT"},
		{retrieval.Config{EmbeddingsProvider: "vertex", GoogleProject: "p", EmbeddingsDim: 1536}, "EMBEDDINGS_DIM"},
		{retrieval.Config{EmbeddingsProvider: "openai"}, "EMBEDDINGS_PROVIDER"},
	}
	for _, tt := range tests {
		err := tt.c.Validate()
		if tt.wantErr == "" {
			require.NoError(t, err)
			continue
		}
		require.ErrorContains(t, err, tt.wantErr)
	}
}
