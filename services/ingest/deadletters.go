package ingest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// CodeNotADeadLetter refuses to requeue a job that is not a dead letter.
const CodeNotADeadLetter = "NOT_A_DEAD_LETTER"

// maxDeadLetters bounds the dead letters GetIngestionStats lists.
const maxDeadLetters = 100

var errNotDeadLetter = errors.New("not a dead letter")

// deadLetter is a dead letter's row.
type deadLetter struct {
	jobID, documentID, corpusID string
	attempts                    int
	reason                      string
	at                          time.Time
}

// DeadLetters returns the tenant's newest dead letters, up to limit, of corpora only when
// it is not empty (a scoped key's).
func (s *Store) DeadLetters(ctx context.Context, tenant string, corpora []string, limit int) ([]deadLetter, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT job_id, document_id, corpus_id, attempts, failure_reason, dead_lettered_at FROM ingest.documents
		 WHERE tenant_id = $1 AND `+isDeadLetter+` AND (cardinality($2::text[]) = 0 OR corpus_id = ANY($2::text[]))
		 ORDER BY dead_lettered_at DESC, document_id
		 LIMIT $3`, tenant, nonNil(corpora), limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters of %s: %w", tenant, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (deadLetter, error) {
		var l deadLetter
		return l, r.Scan(&l.jobID, &l.documentID, &l.corpusID, &l.attempts, &l.reason, &l.at)
	})
}

// Requeue queues the document of a dead letter again, under the same job id, with its
// attempts counted from zero (and a new version, so that a late write of the old attempt
// is fenced). check vets the document first; errNotFound for an unknown job,
// errNotDeadLetter (with the document) for a job that is not a dead letter.
func (s *Store) Requeue(ctx context.Context, tenant, jobID string, check func(Document) error) (d Document, anonymized bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var dead bool
		d, err = scanDocument(tx.QueryRow(ctx, `SELECT `+documentColumns+`, `+isDeadLetter+`, anonymized_at IS NOT NULL
			FROM ingest.documents WHERE tenant_id = $1 AND job_id = $2 FOR UPDATE`, tenant, jobID), &dead, &anonymized)
		if err != nil {
			return err
		}
		if err := check(d); err != nil {
			return err
		}
		if !dead {
			return errNotDeadLetter
		}
		d, err = scanDocument(tx.QueryRow(ctx, `UPDATE ingest.documents SET `+requeueSet("job_id")+`
			WHERE tenant_id = $1 AND document_id = $2 RETURNING `+documentColumns, tenant, d.DocumentID))
		return err
	})
	return d, anonymized, err
}

// RequeueDeadLetter puts a dead letter back on the queue.
func (s *Server) RequeueDeadLetter(ctx context.Context, req *ingestv1.RequeueDeadLetterRequest) (*ingestv1.RequeueDeadLetterResponse, error) {
	p, release, err := s.beginIngest(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if req.GetJobId() == "" {
		return nil, apierr.InvalidArgument("job_id", "job_id is required")
	}
	d, anonymized, err := s.store.Requeue(ctx, p.TenantID, req.GetJobId(), func(d Document) error {
		if !p.AllowsCorpus(d.CorpusID) {
			return principal.CorpusForbidden(d.CorpusID)
		}
		return nil
	})
	switch {
	case errors.Is(err, errNotFound):
		return nil, apierr.NotFound("ingestion job", req.GetJobId())
	case errors.Is(err, errNotDeadLetter):
		return nil, apierr.New(codes.FailedPrecondition, CodeNotADeadLetter,
			fmt.Sprintf("job %s of document %s is not a dead letter: %s", d.JobID, d.DocumentID, whyNotDeadLetter(d, anonymized)),
			"job_id", d.JobID, "document_id", d.DocumentID, "status", d.Status)
	case err != nil:
		return nil, err
	}
	s.enqueue(ctx, d)
	s.audit.Record(ctx, audit.Event{Type: audit.TypeDeadLetterRequeued, Outcome: audit.OutcomeSuccess, ResourceType: "document", ResourceID: d.DocumentID,
		Metadata: map[string]any{"corpus_id": d.CorpusID, "job_id": d.JobID}})
	return &ingestv1.RequeueDeadLetterResponse{JobId: d.JobID, DocumentId: d.DocumentID, Status: d.Status, StatusUrl: statusURL(d.DocumentID)}, nil
}

// whyNotDeadLetter says what a job that is not a dead letter is, and what to do instead.
func whyNotDeadLetter(d Document, anonymized bool) string {
	switch {
	case anonymized:
		return "its document was anonymized (retention or a DSAR): nothing is left to ingest"
	case d.Status == StatusFailed:
		return fmt.Sprintf("it failed for a reason of its document's own (%s); fix the document and upload or reindex it", d.FailureReason)
	case d.busy():
		return fmt.Sprintf("it is %s: it is on the queue already", d.Status)
	case d.Status == StatusDeleting:
		return "its document is being deleted"
	}
	return "it " + d.Status
}

func deadLetterProto(l deadLetter) *ingestv1.DeadLetter {
	return &ingestv1.DeadLetter{JobId: l.jobID, DocumentId: l.documentID, CorpusId: l.corpusID, Attempts: int32(l.attempts),
		FailureReason: l.reason, DeadLetteredAt: timestamppb.New(l.at), RequeueUrl: "/v1/ops/ingestion/dead-letters/" + l.jobID + "/requeue"}
}
