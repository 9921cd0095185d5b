package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/services/ingest"
)

func (h *harness) purge(t *testing.T, ids []string, mode governancev1.PurgeMode) *governancev1.DataPurgeResult {
	t.Helper()
	res, err := h.client.PurgeDocumentData(context.Background(), &ingestv1.PurgeDocumentDataRequest{Purge: &governancev1.DataPurge{
		TenantId: "t1", Category: "documents", Ids: ids, Mode: mode}})
	require.NoError(t, err)
	return res.GetResult()
}

func TestDocumentDataSelectAndPurge(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	stop := h.worker(t, ingest.WorkerOptions{}, nil)
	for _, id := range []string{"d1", "d2"} {
		_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: gatesDoc, DocumentId: id, Filename: id + "-jane-doe.md"})
		require.NoError(t, err)
		h.waitStatus(t, id, ingest.StatusSucceeded)
	}
	stop()
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "still queued", DocumentId: "d3"})
	require.NoError(t, err)

	sel, err := h.client.SelectDocumentData(context.Background(), &ingestv1.SelectDocumentDataRequest{Query: &governancev1.DataQuery{
		TenantId: "t1", Category: "documents", SubjectType: "document", SubjectId: "d1", Limit: 10, WithRows: true}})
	require.NoError(t, err)
	require.Len(t, sel.GetSelection().GetItems(), 1)
	item := sel.GetSelection().GetItems()[0]
	require.Equal(t, "d1", item.GetId())
	require.Equal(t, []*governancev1.HoldScope{{ScopeType: "document", ScopeId: "d1"}}, item.GetScopes())
	require.Contains(t, item.GetRowJson(), "release gates")
	aged, err := h.client.SelectDocumentData(context.Background(), &ingestv1.SelectDocumentDataRequest{Query: &governancev1.DataQuery{
		TenantId: "t1", Category: "documents", OlderThan: timestamppb.New(time.Now().Add(time.Hour)), Limit: 2}})
	require.NoError(t, err)
	require.Len(t, aged.GetSelection().GetItems(), 2)
	require.Equal(t, "d2", aged.GetSelection().GetNextAfterId())

	// Anonymize d1: its chunks leave retrieval, its content and filename go, its counts stay; once.
	res := h.purge(t, []string{"d1"}, governancev1.PurgeMode_PURGE_MODE_ANONYMIZE)
	require.EqualValues(t, 1, res.GetAffected())
	require.Zero(t, h.purge(t, []string{"d1"}, governancev1.PurgeMode_PURGE_MODE_ANONYMIZE).GetAffected())
	require.Zero(t, h.chunkRows(t, "t1", "c1", "d1"))
	var content, filename string
	var chunks int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT content, filename, chunk_count FROM ingest.documents WHERE document_id = 'd1'`).
		Scan(&content, &filename, &chunks))
	require.Equal(t, [2]string{}, [2]string{content, filename})
	require.Positive(t, chunks)

	// Delete d2 and d3: d2 goes with its chunks; d3, still queued, is deferred.
	res = h.purge(t, []string{"d2", "d3", "gone"}, governancev1.PurgeMode_PURGE_MODE_DELETE)
	require.EqualValues(t, 1, res.GetAffected())
	require.Equal(t, []string{"d3"}, res.GetDeferredIds())
	require.Zero(t, h.chunkRows(t, "t1", "c1", "d2"))
	_, err = h.client.GetDocument(reader, &ingestv1.GetDocumentRequest{DocumentId: "d2"})
	require.Equal(t, codes.NotFound, status.Code(err))
	hits, err := h.retrieval.Retrieve(reader, &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "release gates rollback", TopK: 10})
	require.NoError(t, err)
	require.Empty(t, hits.GetChunks(), "neither the anonymized nor the deleted document is retrieved")

	_, err = h.client.SelectDocumentData(context.Background(), &ingestv1.SelectDocumentDataRequest{Query: &governancev1.DataQuery{
		TenantId: "t1", Category: strings.Repeat("x", 3), OlderThan: timestamppb.Now(), Limit: 1}})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}
