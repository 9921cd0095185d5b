package main_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// TestStalledIngestionIsDeadLetteredAndRequeued: with the retrieval schema's tables locked
// against writes, the worker's write of a document stalls; after INGEST_STALL_TIMEOUT with
// no progress the attempt fails, and with INGEST_MAX_ATTEMPTS=1 the job is a dead letter,
// listed by GET /v1/ops/ingestion. Once the lock goes, an admin requeues it (audited) and it
// is indexed. Unknown jobs answer 404, jobs that are not dead letters 409, readers 403.
func TestStalledIngestionIsDeadLetteredAndRequeued(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"INGEST_STALL_TIMEOUT=2s", "INGEST_MAX_ATTEMPTS=1"})
	_, admin := p.createKey("t1", "admin")
	_, reader := p.createKey("t1", "reader")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing": true}`).Status)
	r := p.do(http.MethodPost, "/v1/documents/text", admin, `{"corpus_id": "c1", "document_id": "fine", "text": "Nothing holds this one up."}`)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	fine := p.waitDocument(admin, "fine", "succeeded")

	unlock := lockRetrievalWrites(t, p)
	r = p.do(http.MethodPost, "/v1/documents/text", admin, `{"corpus_id": "c1", "document_id": "stuck", "text": "The write of this one waits on a lock."}`)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	job := r.data()["job_id"].(string)
	dead := p.waitDocument(admin, "stuck", "failed")
	require.Equal(t, "gave up after 1 attempts: INGEST_STALLED: no progress for 2s while its embedded chunk was written", dead["failure_reason"])

	r = p.do(http.MethodGet, "/v1/ops/ingestion", admin, "")
	require.Equal(t, http.StatusOK, r.Status, string(r.Body))
	require.Equal(t, "1", r.data()["dead_letters"])
	letters := r.data()["dead_letter_jobs"].([]any)
	require.Len(t, letters, 1)
	letter := letters[0].(map[string]any)
	require.Equal(t, job, letter["job_id"])
	require.Equal(t, "stuck", letter["document_id"])
	require.Equal(t, dead["failure_reason"], letter["failure_reason"])
	requeue := letter["requeue_url"].(string)
	require.Equal(t, "/v1/ops/ingestion/dead-letters/"+job+"/requeue", requeue)

	r = p.do(http.MethodPost, requeue, reader, "")
	require.Equal(t, http.StatusForbidden, r.Status, string(r.Body))
	r = p.do(http.MethodPost, "/v1/ops/ingestion/dead-letters/job_nope/requeue", admin, "")
	require.Equal(t, http.StatusNotFound, r.Status, string(r.Body))
	require.Equal(t, "NOT_FOUND", r.errorCode())
	r = p.do(http.MethodPost, "/v1/ops/ingestion/dead-letters/"+fine["job_id"].(string)+"/requeue", admin, "")
	require.Equal(t, http.StatusConflict, r.Status, string(r.Body))
	require.Equal(t, "NOT_A_DEAD_LETTER", r.errorCode())
	require.Contains(t, r.JSON["error"].(map[string]any)["message"], "it succeeded")

	unlock()
	r = p.do(http.MethodPost, requeue, admin, "")
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Body))
	require.Equal(t, map[string]any{"job_id": job, "document_id": "stuck", "status": "queued", "status_url": "/v1/documents/stuck"}, r.data())
	doc := p.waitDocument(admin, "stuck", "succeeded")
	require.Equal(t, job, doc["job_id"], "the same job")
	require.EqualValues(t, 1, doc["attempts"])
	require.Equal(t, "0", p.do(http.MethodGet, "/v1/ops/ingestion", admin, "").data()["dead_letters"])
	require.Eventually(t, func() bool {
		events := p.auditEvents(admin, "event_type=documents.dead_letter.requeued")
		return len(events) == 1 && events[0]["resource_id"] == "stuck"
	}, 5*time.Second, 50*time.Millisecond, "the requeue is audited")
}

// lockRetrievalWrites holds a SHARE lock on every table of the retrieval schema, which
// lets reads through and makes writes wait, until unlock (or the end of the test).
func lockRetrievalWrites(t *testing.T, p *platform) (unlock func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := p.DB().Begin(ctx)
	require.NoError(t, err)
	rows, err := tx.Query(ctx, `SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'retrieval'`)
	require.NoError(t, err)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	_, err = tx.Exec(ctx, `LOCK TABLE `+strings.Join(tables, ", ")+` IN SHARE MODE`)
	require.NoError(t, err)
	unlock = func() { _ = tx.Rollback(ctx) }
	t.Cleanup(unlock)
	return unlock
}
