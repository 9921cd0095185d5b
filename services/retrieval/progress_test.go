package retrieval_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

// batchingEmbedder is the hash embedder with a request size of two texts; it stalls on a
// batch that starts with the text stall, until its caller gives up.
type batchingEmbedder struct {
	*retrieval.HashEmbedder
	stall string
}

func (e batchingEmbedder) BatchSize() int { return 2 }

func (e batchingEmbedder) EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error) {
	if texts[0] == e.stall {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return e.HashEmbedder.EmbedDocuments(ctx, texts)
}

// TestUpsertReportsProgress: UpsertDocumentsWithProgress reports each batch of chunks
// embedded (the embedder's request size), then the result once they are written; a call
// cancelled half-way writes nothing of the document (it is replaced in one transaction).
func TestUpsertReportsProgress(t *testing.T) {
	emb := batchingEmbedder{HashEmbedder: retrieval.NewHashEmbedder(retrieval.DefaultDim), stall: "Replaced three."}
	client, _, pool := newClientWithPool(t, emb)
	seed(t, client, "t1", "c1")
	chunks := func(texts ...string) []*retrievalv1.DocumentChunks {
		doc := &retrievalv1.DocumentChunks{DocumentId: "harbour", Version: 1}
		for _, text := range texts {
			doc.Chunks = append(doc.Chunks, &retrievalv1.ChunkInput{Text: text})
		}
		return []*retrievalv1.DocumentChunks{doc}
	}
	stream, err := client.UpsertDocumentsWithProgress(context.Background(), &retrievalv1.UpsertDocumentsWithProgressRequest{TenantId: "t1", CorpusId: "c1",
		Documents: chunks("The harbour opens at dawn.", "Boats leave at noon.", "The pier closes at dusk.", "Fishing needs a permit.", "Nets dry on the quay.")})
	require.NoError(t, err)
	var embedded []int32
	var result *retrievalv1.UpsertDocumentsResponse
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			break
		}
		require.NoError(t, err)
		require.Nil(t, result, "the result is the last event")
		if p := ev.GetProgress(); p != nil {
			require.EqualValues(t, 5, p.GetChunksTotal())
			embedded = append(embedded, p.GetChunksEmbedded())
		}
		result = ev.GetResult()
	}
	require.Equal(t, []int32{2, 4, 5}, embedded)
	require.Equal(t, []int32{5}, result.GetChunkCounts())
	require.Equal(t, retrieval.HashEmbedderName, result.GetEmbedder())
	require.Equal(t, "harbour", retrieve(t, client, "t1", "c1", "harbour pier permit", 1)[0].GetDocumentId())

	// Replace it, and give up after the first batch: the old chunks stay, whole.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err = client.UpsertDocumentsWithProgress(ctx, &retrievalv1.UpsertDocumentsWithProgressRequest{TenantId: "t1", CorpusId: "c1",
		Documents: chunks("Replaced one.", "Replaced two.", "Replaced three.")})
	require.NoError(t, err)
	ev, err := stream.Recv()
	require.NoError(t, err)
	require.EqualValues(t, 2, ev.GetProgress().GetChunksEmbedded())
	cancel()
	_, err = stream.Recv()
	require.Equal(t, codes.Canceled, status.Code(err))
	var texts []string
	rows, err := pool.Query(context.Background(), `SELECT text FROM retrieval.chunks WHERE tenant_id = 't1' AND document_id = 'harbour' ORDER BY ordinal`)
	require.NoError(t, err)
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		texts = append(texts, s)
	}
	require.NoError(t, rows.Err())
	require.Len(t, texts, 5, "the cancelled call wrote nothing")
	require.Equal(t, "The harbour opens at dawn.", texts[0])
	consistent(t, pool)
}
