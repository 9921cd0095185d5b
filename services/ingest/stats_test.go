package ingest_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
)

// GetIngestionStats sums the caller's tenant's documents: by status now, and what ended in
// the window (throughput, failures by reason, queued-to-succeeded times, dead letters).
func TestIngestionStats(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.corpus(t, "t1", "c1", nil)
	h.corpus(t, "t2", "c1", nil)
	for _, id := range []string{"ok1", "ok2", "old", "dead", "bad", "waiting"} {
		_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "text of " + id, DocumentId: id})
		require.NoError(t, err)
	}
	_, err := h.client.CreateDocument(as("t2", apiv1.Role_ROLE_EDITOR), &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "other", DocumentId: "ok1"})
	require.NoError(t, err)
	// What the worker would have done, at known times.
	for _, q := range []string{
		`UPDATE ingest.documents SET status = 'succeeded', chunk_count = 4, queued_at = now() - interval '2 s', finished_at = now() WHERE document_id IN ('ok1', 'ok2')`,
		`UPDATE ingest.documents SET status = 'succeeded', chunk_count = 9, queued_at = now() - interval '30 h', finished_at = now() - interval '30 h' WHERE tenant_id = 't1' AND document_id = 'old'`,
		`UPDATE ingest.documents SET status = 'failed', failure_reason = 'gave up after 3 attempts: EMBEDDING_FAILED: timeout', attempts = 3, finished_at = now(), dead_lettered_at = now() WHERE document_id = 'dead'`,
		`UPDATE ingest.documents SET status = 'failed', failure_reason = 'INVALID_DOCUMENT: empty', attempts = 1, finished_at = now() WHERE document_id = 'bad'`,
		`UPDATE ingest.documents SET queued_at = now() - interval '60 s' WHERE document_id = 'waiting'`,
	} {
		_, err := h.pool.Exec(ctx, q)
		require.NoError(t, err)
	}
	admin := as("t1", apiv1.Role_ROLE_ADMIN)
	res, err := h.client.GetIngestionStats(admin, &ingestv1.GetIngestionStatsRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 24, res.GetHours())
	require.Equal(t, map[string]int64{"succeeded": 3, "failed": 2, "queued": 1}, res.GetDocumentsByStatus())
	require.EqualValues(t, 2, res.GetSucceeded(), "the 30-hour-old one is outside the window")
	require.EqualValues(t, 2, res.GetFailed())
	require.InDelta(t, 2.0/(24*60), res.GetDocumentsPerMinute(), 1e-9)
	require.InDelta(t, 8.0/(24*60), res.GetChunksPerMinute(), 1e-9)
	require.InDelta(t, 2000, res.GetQueuedToSucceededP50Ms(), 50)
	require.InDelta(t, 2000, res.GetQueuedToSucceededP95Ms(), 50)
	require.Equal(t, []*ingestv1.FailureCount{{Reason: "EMBEDDING_FAILED", Count: 1}, {Reason: "INVALID_DOCUMENT", Count: 1}}, res.GetFailures())
	require.InDelta(t, 60, res.GetOldestQueuedAgeS(), 5)
	require.EqualValues(t, 1, res.GetDeadLetters(), "out of attempts (3)")
	require.Equal(t, 1, h.audit.Count(audit.TypeOpsViewed))

	res, err = h.client.GetIngestionStats(admin, &ingestv1.GetIngestionStatsRequest{Hours: 48})
	require.NoError(t, err)
	require.EqualValues(t, 3, res.GetSucceeded())
	_, err = h.client.GetIngestionStats(admin, &ingestv1.GetIngestionStatsRequest{Hours: 169})
	e, _ := apierr.From(err)
	require.Equal(t, "hours", e.Details["field"])
}
