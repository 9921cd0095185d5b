package ingest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexusrag/nexusrag/pkg/keyset"
)

// Document statuses.
const (
	StatusQueued     = "queued"
	StatusProcessing = "processing"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	// StatusDeleting is held while DeleteDocument removes the chunks.
	StatusDeleting = "deleting"
)

// Store errors, turned into API errors by the server.
var (
	errNotFound       = errors.New("document not found")
	errExists         = errors.New("document exists")
	errBusy           = errors.New("document is being ingested")
	errCorpusMismatch = errors.New("document belongs to another corpus")
)

// Document is a row of ingest.documents without its text.
type Document struct {
	TenantID, DocumentID, CorpusID string
	Filename, ContentType          string
	SizeBytes                      int64
	ChunkSize, ChunkOverlap        int
	Status, FailureReason          string
	ChunkCount, Attempts           int
	Version                        int64
	JobID                          string
	CreatedAt, UpdatedAt, QueuedAt time.Time
	StartedAt, FinishedAt          *time.Time
}

// NewDocument is what CreateDocument stores: its text, or the file whose text the worker
// extracts (a PDF).
type NewDocument struct {
	TenantID, DocumentID, CorpusID string
	Filename, ContentType, Text    string
	File                           []byte
	Chunking                       ChunkOptions
}

// size is the bytes stored: the text, or the file.
func (n NewDocument) size() int { return len(n.Text) + len(n.File) }

// Store holds the ingest schema's tables.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const documentColumns = `tenant_id, document_id, corpus_id, filename, content_type, size_bytes, chunk_size_chars, chunk_overlap_chars,
	status, failure_reason, chunk_count, attempts, version, job_id, created_at, updated_at, queued_at, started_at, finished_at`

// scanDocument scans documentColumns, then the columns of extra.
func scanDocument(row pgx.Row, extra ...any) (Document, error) {
	var d Document
	err := row.Scan(append([]any{&d.TenantID, &d.DocumentID, &d.CorpusID, &d.Filename, &d.ContentType, &d.SizeBytes, &d.ChunkSize, &d.ChunkOverlap,
		&d.Status, &d.FailureReason, &d.ChunkCount, &d.Attempts, &d.Version, &d.JobID, &d.CreatedAt, &d.UpdatedAt, &d.QueuedAt,
		&d.StartedAt, &d.FinishedAt}, extra...)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, errNotFound
	}
	return d, err
}

// busy reports whether a job of the document is queued or running.
func (d Document) busy() bool { return d.Status == StatusQueued || d.Status == StatusProcessing }

// locked reports whether the document may not be replaced or reindexed now.
func (d Document) locked() bool { return d.busy() || d.Status == StatusDeleting }

func newJobID() string { return "job_" + uuid.Must(uuid.NewV7()).String() }

func newDocumentID() string {
	return "doc_" + strings.ReplaceAll(uuid.Must(uuid.NewV7()).String(), "-", "")
}

// Created says what Create did.
type Created int

const (
	// CreatedNew stored a new document.
	CreatedNew Created = iota
	// CreatedReplaced replaced an existing document's text (overwrite).
	CreatedReplaced
	// CreatedUnchanged found the same document (same corpus, text and options) already
	// stored: a repeated request, answered with the document and job it made.
	CreatedUnchanged
)

// Create stores a new document, queued. An existing document of the same id is replaced
// with overwrite (errExists without); the very same document is left as it is.
func (s *Store) Create(ctx context.Context, n NewDocument, overwrite bool) (d Document, outcome Created, err error) {
	if n.File == nil {
		n.File = []byte{} // the column is never NULL: nil would compare as NULL
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		d, err = scanDocument(tx.QueryRow(ctx, `
			INSERT INTO ingest.documents (tenant_id, document_id, corpus_id, filename, content_type, content, file, size_bytes,
			       chunk_size_chars, chunk_overlap_chars, status, job_id, enqueued_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'queued', $11, now())
			ON CONFLICT (tenant_id, document_id) DO NOTHING
			RETURNING `+documentColumns,
			n.TenantID, n.DocumentID, n.CorpusID, n.Filename, n.ContentType, n.Text, n.File, n.size(), n.Chunking.Size, n.Chunking.Overlap, newJobID()))
		if !errors.Is(err, errNotFound) {
			return err
		}
		var same bool
		cur, err := scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+`,
			       corpus_id = $3 AND filename = $4 AND content_type = $5 AND chunk_size_chars = $6 AND chunk_overlap_chars = $7
			       AND size_bytes = $8 AND content = $9 AND file = $10
			  FROM ingest.documents
			 WHERE tenant_id = $1 AND document_id = $2 FOR UPDATE`,
			n.TenantID, n.DocumentID, n.CorpusID, n.Filename, n.ContentType, n.Chunking.Size, n.Chunking.Overlap, n.size(), n.Text, n.File), &same)
		switch {
		case err != nil:
			return err
		case same && cur.Status != StatusDeleting:
			d, outcome = cur, CreatedUnchanged
			return nil
		case !overwrite:
			d = cur
			return errExists
		case cur.CorpusID != n.CorpusID:
			d = cur
			return errCorpusMismatch
		case cur.locked():
			d = cur
			return errBusy
		}
		outcome = CreatedReplaced
		d, err = scanDocument(tx.QueryRow(ctx, `
			UPDATE ingest.documents
			   SET filename = $3, content_type = $4, content = $5, file = $6, size_bytes = $7, chunk_size_chars = $8, chunk_overlap_chars = $9,
			       `+requeueSet("$10")+`
			 WHERE tenant_id = $1 AND document_id = $2
			RETURNING `+documentColumns,
			n.TenantID, n.DocumentID, n.Filename, n.ContentType, n.Text, n.File, n.size(), n.Chunking.Size, n.Chunking.Overlap, newJobID()))
		return err
	})
	return d, outcome, err
}

// requeueSet starts a new ingestion of a document, assumed enqueued (MarkNotEnqueued says
// otherwise); jobParam is the new job id's parameter.
func requeueSet(jobParam string) string {
	return `status = 'queued', failure_reason = '', version = nextval('ingest.document_versions'), job_id = ` + jobParam + `, attempts = 0,
	enqueued_at = now(), updated_at = now(), queued_at = now(), started_at = NULL, finished_at = NULL, dead_lettered_at = NULL`
}

// Reindex queues a new ingestion of a document with the given chunking.
func (s *Store) Reindex(ctx context.Context, tenant, id string, chunking func(cur Document) (ChunkOptions, error)) (Document, error) {
	var d Document
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+` FROM ingest.documents
			WHERE tenant_id = $1 AND document_id = $2 FOR UPDATE`, tenant, id))
		if err != nil {
			return err
		}
		if cur.locked() {
			d = cur
			return errBusy
		}
		o, err := chunking(cur)
		if err != nil {
			return err
		}
		d, err = scanDocument(tx.QueryRow(ctx, `
			UPDATE ingest.documents SET chunk_size_chars = $3, chunk_overlap_chars = $4, `+requeueSet("$5")+`
			 WHERE tenant_id = $1 AND document_id = $2
			RETURNING `+documentColumns, tenant, id, o.Size, o.Overlap, newJobID()))
		return err
	})
	return d, err
}

// enqueue puts j on the queue. When Redis cannot take it, the document is marked for the
// requeue sweep, which enqueues it later: nothing is lost. The error says what failed.
func enqueue(ctx context.Context, q *Queue, s *Store, j Job) error {
	_, err := q.Enqueue(ctx, j)
	if err == nil {
		return nil
	}
	if merr := s.MarkNotEnqueued(context.WithoutCancel(ctx), j.TenantID, j.DocumentID, j.Version); merr != nil {
		return errors.Join(err, fmt.Errorf("mark document %s not enqueued (it is requeued once stale): %w", j.DocumentID, merr))
	}
	return err
}

// MarkNotEnqueued records that the job of a document's version could not be put on the
// queue, for the requeue sweep.
func (s *Store) MarkNotEnqueued(ctx context.Context, tenant, id string, version int64) error {
	_, err := s.pool.Exec(ctx, `UPDATE ingest.documents SET enqueued_at = NULL WHERE tenant_id = $1 AND document_id = $2 AND version = $3`,
		tenant, id, version)
	return err
}

// Get returns one document of a tenant.
func (s *Store) Get(ctx context.Context, tenant, id string) (Document, error) {
	return scanDocument(s.pool.QueryRow(ctx, `SELECT `+documentColumns+` FROM ingest.documents WHERE tenant_id = $1 AND document_id = $2`,
		tenant, id))
}

// ListQuery filters and pages ListDocuments.
type ListQuery struct {
	CorpusID, Status string
	// InCorpora, when not empty, keeps documents of these corpora only (a scoped key's).
	InCorpora []string
	After     *keyset.Position
	Limit     int
}

// List returns up to q.Limit+1 documents, newest first (the extra one tells that a next page exists).
func (s *Store) List(ctx context.Context, tenant string, q ListQuery) ([]Document, error) {
	var afterAt *time.Time
	var afterID *string
	if q.After != nil {
		afterAt, afterID = &q.After.At, &q.After.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+documentColumns+` FROM ingest.documents
		WHERE tenant_id = $1
		  AND ($2 = '' OR corpus_id = $2)
		  AND ($3 = '' OR status = $3)
		  AND ($4::timestamptz IS NULL OR (created_at, document_id) < ($4, $5))
		  AND (cardinality($7::text[]) = 0 OR corpus_id = ANY($7::text[]))
		ORDER BY created_at DESC, document_id DESC
		LIMIT $6`, tenant, q.CorpusID, q.Status, afterAt, afterID, q.Limit+1, nonNil(q.InCorpora))
	if err != nil {
		return nil, fmt.Errorf("list documents: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Document, error) { return scanDocument(r) })
}

// Delete removes a document that no job is working on, in three steps so that no
// transaction stays open while removeChunks calls the retrieval service: the document
// is marked deleting (which overwrite and reindex refuse), removeChunks runs, then the
// row goes. When removeChunks fails the document gets its status back; a delete
// interrupted half-way is finished by the next one.
func (s *Store) Delete(ctx context.Context, tenant, id string, removeChunks func(Document) error) (Document, error) {
	var d Document
	var previous string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		d, err = scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+` FROM ingest.documents
			WHERE tenant_id = $1 AND document_id = $2 FOR UPDATE`, tenant, id))
		if err != nil {
			return err
		}
		if d.busy() {
			return errBusy
		}
		previous = d.Status
		_, err = tx.Exec(ctx, `UPDATE ingest.documents SET status = 'deleting', updated_at = now() WHERE tenant_id = $1 AND document_id = $2`, tenant, id)
		return err
	})
	if err != nil {
		return d, err
	}
	if err := removeChunks(d); err != nil {
		if previous != StatusDeleting {
			if _, rerr := s.pool.Exec(context.WithoutCancel(ctx), `UPDATE ingest.documents SET status = $3
				WHERE tenant_id = $1 AND document_id = $2 AND status = 'deleting'`, tenant, id, previous); rerr != nil {
				return d, fmt.Errorf("%w (and restoring its status failed: %v)", err, rerr)
			}
		}
		return d, err
	}
	_, err = s.pool.Exec(ctx, `DELETE FROM ingest.documents WHERE tenant_id = $1 AND document_id = $2 AND status = 'deleting'`, tenant, id)
	return d, err
}

// claimed is a document a worker is about to ingest.
type claimed struct {
	Document
	text string
	file []byte // a PDF's bytes (text is empty)
	job  Job
}

// Claim marks the documents of jobs as processing and returns them with their text. A job
// whose document is gone, has moved on to a newer version or is already finished is not
// returned: it is stale and only needs acknowledging.
func (s *Store) Claim(ctx context.Context, jobs []Job) ([]claimed, error) {
	byKey := make(map[[2]string]Job, len(jobs))
	for _, j := range jobs {
		byKey[[2]string{j.TenantID, j.DocumentID}] = j
	}
	tenants, ids, versions := jobColumns(jobs)
	rows, err := s.pool.Query(ctx, `
		UPDATE ingest.documents d
		   SET status = 'processing', attempts = d.attempts + 1, started_at = now(), updated_at = now()
		  FROM unnest($1::text[], $2::text[], $3::bigint[]) AS j(job_tenant, job_document, job_version)
		 WHERE d.tenant_id = j.job_tenant AND d.document_id = j.job_document AND d.version = j.job_version
		   AND d.status IN ('queued', 'processing')
		RETURNING `+documentColumns+`, content, file`, tenants, ids, versions)
	if err != nil {
		return nil, fmt.Errorf("claim %d documents: %w", len(jobs), err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimed, error) {
		var c claimed
		d, err := scanDocument(r, &c.text, &c.file)
		c.Document, c.job = d, byKey[[2]string{d.TenantID, d.DocumentID}]
		return c, err
	})
}

// KeepAlive marks the documents of jobs a worker is still working on as updated now: the
// requeue sweep must not take a long ingestion that keeps progressing for a lost job.
func (s *Store) KeepAlive(ctx context.Context, jobs []Job) error {
	tenants, ids, versions := jobColumns(jobs)
	_, err := s.pool.Exec(ctx, `
		UPDATE ingest.documents d SET updated_at = now()
		  FROM unnest($1::text[], $2::text[], $3::bigint[]) AS j(job_tenant, job_document, job_version)
		 WHERE d.tenant_id = j.job_tenant AND d.document_id = j.job_document AND d.version = j.job_version
		   AND d.status = 'processing'`, tenants, ids, versions)
	if err != nil {
		return fmt.Errorf("keep %d documents alive: %w", len(jobs), err)
	}
	return nil
}

// jobColumns are the tenants, documents and versions of jobs, as columns for unnest.
func jobColumns(jobs []Job) (tenants, ids []string, versions []int64) {
	tenants, ids, versions = make([]string, len(jobs)), make([]string, len(jobs)), make([]int64, len(jobs))
	for i, j := range jobs {
		tenants[i], ids[i], versions[i] = j.TenantID, j.DocumentID, j.Version
	}
	return tenants, ids, versions
}

// outcome is how a worker's attempt at a document's version ended.
type outcome struct {
	job        string // the stream id of the job, acknowledged once the outcome is recorded
	tenant, id string
	version    int64
	// status is succeeded or failed, or queued: the attempt failed and the job is retried.
	status     string
	chunks     int
	reason     string
	deadLetter bool // failed: out of attempts
}

// outcome is how this claim of the document ended.
func (c claimed) outcome(status string, chunks int, reason string) outcome {
	return outcome{job: c.job.ID, tenant: c.TenantID, id: c.DocumentID, version: c.Version, status: status, chunks: chunks, reason: reason}
}

// Finish records outcomes; an outcome for a version that is no longer current changes
// nothing. A retried document is queued again with the reason of its failed attempt.
func (s *Store) Finish(ctx context.Context, outs []outcome) error {
	n := len(outs)
	tenants, ids, statuses, reasons := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	versions, chunks, dead := make([]int64, n), make([]int32, n), make([]bool, n)
	for i, o := range outs {
		tenants[i], ids[i], statuses[i], reasons[i], versions[i], chunks[i] = o.tenant, o.id, o.status, o.reason, o.version, int32(o.chunks)
		dead[i] = o.deadLetter
	}
	_, err := s.pool.Exec(ctx, `
		UPDATE ingest.documents d
		   SET status = o.status, failure_reason = o.reason,
		       chunk_count = CASE WHEN o.status = 'succeeded' THEN o.chunks ELSE d.chunk_count END,
		       finished_at = CASE WHEN o.status = 'queued' THEN NULL ELSE now() END,
		       dead_lettered_at = CASE WHEN o.dead THEN now() END, updated_at = now()
		  FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::int[], $6::text[], $7::bool[])
		       AS o(o_tenant, o_document, o_version, status, chunks, reason, dead)
		 WHERE d.tenant_id = o.o_tenant AND d.document_id = o.o_document AND d.version = o.o_version AND d.status = 'processing'`,
		tenants, ids, versions, statuses, chunks, reasons, dead)
	if err != nil {
		return fmt.Errorf("record %d ingestion outcomes: %w", n, err)
	}
	return nil
}

// Stale returns up to limit unfinished documents whose job may not be on the queue: not
// enqueued (Redis was down when they were created) for longer than grace, or not updated
// for longer than lost (the queue lost the job, for example when Redis restarted without
// persistence). It marks them enqueued now, assuming the caller enqueues them, so
// concurrent sweepers do not pick the same ones.
func (s *Store) Stale(ctx context.Context, grace, lost time.Duration, limit int) ([]Job, error) {
	rows, err := s.pool.Query(ctx, `
		UPDATE ingest.documents d SET updated_at = now(), enqueued_at = now()
		  FROM (SELECT tenant_id, document_id FROM ingest.documents
		         WHERE status IN ('queued', 'processing')
		           AND ((enqueued_at IS NULL AND updated_at < now() - $1::interval) OR updated_at < now() - $2::interval)
		         ORDER BY updated_at LIMIT $3 FOR UPDATE SKIP LOCKED) s
		 WHERE d.tenant_id = s.tenant_id AND d.document_id = s.document_id
		RETURNING d.tenant_id, d.corpus_id, d.document_id, d.version`, grace, lost, limit)
	if err != nil {
		return nil, fmt.Errorf("find documents to requeue: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) {
		j := Job{Kind: KindIngest}
		return j, r.Scan(&j.TenantID, &j.CorpusID, &j.DocumentID, &j.Version)
	})
}

// isDeadLetter is what a dead letter's row meets: failed out of attempts (the worker sets
// dead_lettered_at), and its content still there to ingest.
const isDeadLetter = `(status = 'failed' AND dead_lettered_at IS NOT NULL AND anonymized_at IS NULL)`

// ingestionStats is a tenant's ingestion over a window (GetIngestionStats).
type ingestionStats struct {
	byStatus          map[string]int64
	succeeded, failed int64
	chunks            int64
	p50MS, p95MS      float64
	failures          []failureCount
	oldestQueuedAgeS  *float64
	deadLetters       int64
}

type failureCount struct {
	reason string
	count  int64
}

// IngestionStats reads tenant's ingestion since since.
func (s *Store) IngestionStats(ctx context.Context, tenant string, since time.Time) (ingestionStats, error) {
	st := ingestionStats{byStatus: map[string]int64{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT status, count(*) FROM ingest.documents WHERE tenant_id = $1 GROUP BY status`, tenant)
		if err != nil {
			return err
		}
		for rows.Next() {
			var status string
			var n int64
			if err := rows.Scan(&status, &n); err != nil {
				return err
			}
			st.byStatus[status] = n
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'),
				coalesce(sum(chunk_count) FILTER (WHERE status = 'succeeded'), 0),
				coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - queued_at)) FILTER (WHERE status = 'succeeded'), 0) * 1000,
				coalesce(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - queued_at)) FILTER (WHERE status = 'succeeded'), 0) * 1000
			FROM ingest.documents WHERE tenant_id = $1 AND finished_at >= $2`, tenant, since).
			Scan(&st.succeeded, &st.failed, &st.chunks, &st.p50MS, &st.p95MS); err != nil {
			return err
		}
		// A dead letter's reason is "gave up after N attempts: CODE: message": counted by its code.
		rows, err = tx.Query(ctx, `SELECT split_part(regexp_replace(failure_reason, '^gave up after \d+ attempts: ', ''), ':', 1), count(*) FROM ingest.documents
			WHERE tenant_id = $1 AND status = 'failed' AND finished_at >= $2 GROUP BY 1 ORDER BY 2 DESC, 1`, tenant, since)
		if err != nil {
			return err
		}
		st.failures, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (failureCount, error) {
			var f failureCount
			return f, r.Scan(&f.reason, &f.count)
		})
		if err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT extract(epoch FROM now() - min(queued_at) FILTER (WHERE status = 'queued'))::float8,
				count(*) FILTER (WHERE `+isDeadLetter+`)
			FROM ingest.documents WHERE tenant_id = $1 AND status IN ('queued', 'failed')`, tenant).Scan(&st.oldestQueuedAgeS, &st.deadLetters)
	})
	if err != nil {
		return ingestionStats{}, fmt.Errorf("ingestion stats of %s: %w", tenant, err)
	}
	return st, nil
}

// nonNil passes an empty list as '{}' rather than NULL.
func nonNil(ids []string) []string {
	if ids == nil {
		return []string{}
	}
	return ids
}
