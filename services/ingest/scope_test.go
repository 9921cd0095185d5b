package ingest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/ingest"
)

// TestScopedKeysTouchOnlyTheirCorporaDocuments: a key scoped to corpus "mine" creates,
// reads, lists, reindexes and deletes documents there, and gets FORBIDDEN naming the
// corpus for documents of "theirs", which it never lists.
func TestScopedKeysTouchOnlyTheirCorporaDocuments(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "mine", map[string]any{})
	h.corpus(t, "t1", "theirs", map[string]any{})
	scoped := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "s", Role: apiv1.Role_ROLE_EDITOR, CorpusIDs: []string{"mine"}})
	forbidden := func(t *testing.T, err error, what string) {
		t.Helper()
		e, ok := apierr.FromStatus(status.Convert(err))
		require.True(t, ok, "%s: %v", what, err)
		require.Equal(t, apierr.CodeForbidden, e.Code, what)
		require.Equal(t, "theirs", e.Details["corpus_id"], what)
	}

	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "theirs", Text: gatesDoc, DocumentId: "d-theirs"})
	require.NoError(t, err)
	_, err = h.client.CreateDocument(scoped, &ingestv1.CreateDocumentRequest{CorpusId: "mine", Text: gatesDoc, DocumentId: "d-mine"})
	require.NoError(t, err)
	h.worker(t, ingest.WorkerOptions{}, nil)
	h.waitStatus(t, "d-mine", ingest.StatusSucceeded)
	h.waitStatus(t, "d-theirs", ingest.StatusSucceeded)

	_, err = h.client.CreateDocument(scoped, &ingestv1.CreateDocumentRequest{CorpusId: "theirs", Text: gatesDoc})
	forbidden(t, err, "create in theirs")
	_, err = h.client.CreateDocument(scoped, &ingestv1.CreateDocumentRequest{CorpusId: "mine", Text: gatesDoc, DocumentId: "d-theirs", Overwrite: true})
	forbidden(t, err, "overwrite a document of theirs")
	_, err = h.client.GetDocument(scoped, &ingestv1.GetDocumentRequest{DocumentId: "d-theirs"})
	forbidden(t, err, "get")
	_, err = h.client.ReindexDocument(scoped, &ingestv1.ReindexDocumentRequest{DocumentId: "d-theirs"})
	forbidden(t, err, "reindex")
	_, err = h.client.DeleteDocument(scoped, &ingestv1.DeleteDocumentRequest{DocumentId: "d-theirs"})
	forbidden(t, err, "delete")
	_, err = h.client.ListDocuments(scoped, &ingestv1.ListDocumentsRequest{CorpusId: "theirs"})
	forbidden(t, err, "list theirs")
	got, err := h.client.GetDocument(editor, &ingestv1.GetDocumentRequest{DocumentId: "d-theirs"})
	require.NoError(t, err)
	require.Equal(t, ingest.StatusSucceeded, got.GetDocument().GetStatus(), "a refused delete leaves the document as it was")

	list, err := h.client.ListDocuments(scoped, &ingestv1.ListDocumentsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetDocuments(), 1)
	require.Equal(t, "d-mine", list.GetDocuments()[0].GetDocumentId())
	list, err = h.client.ListDocuments(editor, &ingestv1.ListDocumentsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetDocuments(), 2, "an unscoped key lists every corpus")

	q, err := h.client.QueryDocuments(scoped, &ingestv1.QueryDocumentsRequest{Limit: 10})
	require.NoError(t, err)
	require.Len(t, q.GetDocuments(), 1)
	require.Equal(t, map[string]int32{ingest.StatusSucceeded: 1}, q.GetStatusCounts(), "counts cover the key's corpora only")
	_, err = h.client.QueryDocuments(scoped, &ingestv1.QueryDocumentsRequest{Limit: 10, CorpusId: "theirs"})
	forbidden(t, err, "query theirs")

	_, err = h.client.GetDocument(scoped, &ingestv1.GetDocumentRequest{DocumentId: "d-mine"})
	require.NoError(t, err)
	_, err = h.client.ReindexDocument(scoped, &ingestv1.ReindexDocumentRequest{DocumentId: "d-mine"})
	require.NoError(t, err)
	h.waitStatus(t, "d-mine", ingest.StatusSucceeded)
	_, err = h.client.DeleteDocument(scoped, &ingestv1.DeleteDocumentRequest{DocumentId: "d-mine"})
	require.NoError(t, err)
}
