package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
	"github.com/nexusrag/nexusrag/pkg/extract"
	"github.com/nexusrag/nexusrag/pkg/keyset"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/rollouts"
)

// Codes of the ingest service.
const (
	CodeDocumentExists         = "DOCUMENT_EXISTS"
	CodeDocumentBusy           = "DOCUMENT_BUSY"
	CodeDocumentCorpusMismatch = "DOCUMENT_CORPUS_MISMATCH"
	CodeCorpusNotLocal         = "CORPUS_NOT_LOCAL"
	CodeInvalidPageToken       = "INVALID_PAGE_TOKEN"
)

// Content types a document may have.
const (
	ContentTypePlain    = "text/plain"
	ContentTypeMarkdown = "text/markdown"
	// ContentTypeHTML documents are stored as sent; their visible text (extract.HTML) is
	// what is chunked, with each heading's section.
	ContentTypeHTML = "text/html"
)

const (
	defaultPageSize = 50
	maxPageSize     = 200
	maxFilename     = 255
)

var documentIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// Recorder is where the service sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.ingest.v1.IngestService.
type Server struct {
	ingestv1.UnimplementedIngestServiceServer
	store     *Store
	queue     *Queue
	retrieval retrievalv1.RetrievalServiceClient
	audit     Recorder
	log       *slog.Logger
	maxBytes  int64
	writes    *bulkhead.Bulkhead
	// rollouts holds kill.ingest.
	rollouts rollouts.Checker
	// holds answers legal holds before a delete (nil: none are checked).
	holds governancev1.LegalHoldServiceClient
	// staleAfter is the heartbeat age past which the worker counts as missing.
	staleAfter time.Duration
}

// NewServer returns the IngestService implementation; documents over maxBytes are
// refused, and writes beyond maxInflight at once answer SERVICE_BUSY (0: no bound).
func NewServer(store *Store, queue *Queue, retrieval retrievalv1.RetrievalServiceClient, rec Recorder, log *slog.Logger, maxBytes int64, maxInflight int) *Server {
	s := &Server{store: store, queue: queue, retrieval: retrieval, audit: rec, log: log, maxBytes: maxBytes, rollouts: rollouts.None}
	if maxInflight > 0 {
		s.writes = bulkhead.New("the ingest service", maxInflight)
	}
	return s
}

// beginWrite authenticates a write and takes a slot of the bulkhead (SERVICE_BUSY when
// none is free); release gives it back.
func (s *Server) beginWrite(ctx context.Context) (p principal.Principal, release func(), err error) {
	if p, err = principal.Require(ctx); err != nil {
		return p, nil, err
	}
	release, err = s.writes.Acquire()
	return p, release, err
}

// beginIngest is beginWrite for a write that queues ingestion work, which kill.ingest
// refuses first.
func (s *Server) beginIngest(ctx context.Context) (p principal.Principal, release func(), err error) {
	if err := s.rollouts.Check(rollouts.KillIngest); err != nil {
		return p, nil, err
	}
	return s.beginWrite(ctx)
}

// CreateDocument stores a document and queues its ingestion.
func (s *Server) CreateDocument(ctx context.Context, req *ingestv1.CreateDocumentRequest) (*ingestv1.CreateDocumentResponse, error) {
	p, release, err := s.beginIngest(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	n, err := s.validateNew(req)
	if err != nil {
		return nil, err
	}
	n.TenantID = p.TenantID
	if !p.AllowsCorpus(n.CorpusID) {
		return nil, principal.CorpusForbidden(n.CorpusID)
	}
	if err := s.requireLocalCorpus(ctx, n.CorpusID); err != nil {
		return nil, err
	}
	if req.GetOverwrite() { // replacing a held document would destroy what the hold keeps
		if err := s.requireDocumentCorpus(ctx, p, n.DocumentID); err != nil && !errors.Is(err, errNotFound) {
			return nil, err
		}
		if err := s.checkHold(ctx, p.TenantID, n.DocumentID, "replaced"); err != nil {
			return nil, err
		}
	}
	d, outcome, err := s.store.Create(ctx, n, req.GetOverwrite())
	if errors.Is(err, errCorpusMismatch) && !p.AllowsCorpus(d.CorpusID) {
		return nil, principal.CorpusForbidden(d.CorpusID) // the same id in a corpus beyond the key's
	}
	if err != nil {
		return nil, documentError(err, n.DocumentID, d)
	}
	replaced := outcome == CreatedReplaced
	if outcome != CreatedUnchanged { // a repeated request: its job is queued (or done) already
		s.enqueue(ctx, d)
		s.audit.Record(ctx, audit.Event{Type: audit.TypeIngestEnqueued, Outcome: audit.OutcomeSuccess, ResourceType: "document", ResourceID: d.DocumentID,
			Metadata: map[string]any{"corpus_id": d.CorpusID, "job_id": d.JobID, "size_bytes": d.SizeBytes, "replaced": replaced}})
	}
	return &ingestv1.CreateDocumentResponse{DocumentId: d.DocumentID, JobId: d.JobID, StatusUrl: statusURL(d.DocumentID), Status: d.Status, Replaced: replaced}, nil
}

func (s *Server) validateNew(req *ingestv1.CreateDocumentRequest) (NewDocument, error) {
	n := NewDocument{CorpusID: req.GetCorpusId(), DocumentID: req.GetDocumentId(), Filename: req.GetFilename(), Text: req.GetText(), File: req.GetFile()}
	switch ct := strings.ToLower(strings.TrimSpace(req.GetContentType())); ct {
	case "", ContentTypePlain:
		n.ContentType = ContentTypePlain
	case ContentTypeMarkdown, ContentTypeHTML, extract.ContentTypeDOCX, extract.ContentTypePDF:
		n.ContentType = ct
	default:
		return n, apierr.New(codes.InvalidArgument, apierr.CodeUnsupportedMediaType,
			fmt.Sprintf("content type %q is not supported: send text/plain, text/markdown, text/html or application/pdf (a DOCX's text, extracted by the gateway, as %s)",
				req.GetContentType(), extract.ContentTypeDOCX), "field", "content_type")
	}
	if n.CorpusID == "" {
		return n, apierr.InvalidArgument("corpus_id", "corpus_id is required")
	}
	if err := s.validateContent(n); err != nil {
		return n, err
	}
	switch {
	case n.DocumentID != "" && !documentIDPattern.MatchString(n.DocumentID):
		return n, apierr.InvalidArgument("document_id", "document_id must be 1 to 128 letters, digits, _ . - (starting with a letter or digit)")
	case utf8.RuneCountInString(n.Filename) > maxFilename || strings.IndexFunc(n.Filename, unicode.IsControl) >= 0:
		return n, apierr.InvalidArgument("filename", fmt.Sprintf("filename must be at most %d characters, without control characters", maxFilename))
	}
	if n.DocumentID == "" {
		n.DocumentID = newDocumentID()
	}
	n.Chunking = ChunkOptions{Size: int(req.GetChunkSizeChars()), Overlap: int(req.GetChunkOverlapChars())}
	if n.Chunking.Size == 0 {
		n.Chunking.Size = DefaultChunkSize
		if req.GetChunkOverlapChars() == 0 {
			n.Chunking.Overlap = DefaultChunkOverlap
		}
	}
	if err := n.Chunking.Validate(); err != nil {
		return n, chunkingError(err)
	}
	return n, nil
}

// validateContent checks a document's text, or for a PDF the file the worker extracts its
// text from: here only what is known without reading it (its size and %PDF- header).
func (s *Server) validateContent(n NewDocument) error {
	if n.ContentType == extract.ContentTypePDF {
		switch {
		case n.Text != "":
			return apierr.InvalidArgument("text", "a PDF is sent as file (its bytes), not as text")
		case len(n.File) == 0:
			return apierr.InvalidArgument("file", "file is empty")
		case int64(len(n.File)) > s.maxBytes:
			return tooLarge("file", len(n.File), s.maxBytes)
		case !bytes.Contains(n.File[:min(len(n.File), 1024)], []byte("%PDF-")):
			return apierr.InvalidArgument("file", "the file is not a PDF (it has no %PDF- header)")
		}
		return nil
	}
	switch {
	case len(n.File) > 0:
		return apierr.InvalidArgument("file", "file is for application/pdf documents; send any other document as text")
	case int64(len(n.Text)) > s.maxBytes:
		return tooLarge("text", len(n.Text), s.maxBytes)
	case !utf8.ValidString(n.Text):
		return apierr.InvalidArgument("text", "text must be valid UTF-8")
	case strings.TrimSpace(n.Text) == "":
		return apierr.InvalidArgument("text", "text is empty")
	case n.ContentType == ContentTypeHTML && strings.TrimSpace(extract.HTML(n.Text)) == "":
		return apierr.InvalidArgument("text", "the HTML has no visible text (only markup, scripts or styles)")
	}
	return nil
}

func tooLarge(field string, n int, limit int64) error {
	return apierr.New(codes.InvalidArgument, apierr.CodePayloadTooLarge,
		fmt.Sprintf("document %s is %d bytes; the limit is %d (INGEST_MAX_BYTES)", field, n, limit), "limit_bytes", fmt.Sprint(limit))
}

// providerLocal is the retrieval provider whose documents this service ingests.
const providerLocal = "local_pgvector"

// requireLocalCorpus checks that the corpus exists (for the caller's tenant) and is
// indexed here: documents of Bedrock or Vertex AI Search corpora live in those services.
func (s *Server) requireLocalCorpus(ctx context.Context, corpus string) error {
	res, err := s.retrieval.GetCorpus(ctx, &retrievalv1.GetCorpusRequest{CorpusId: corpus})
	if err != nil {
		return err
	}
	if provider := res.GetCorpus().GetProvider(); provider != providerLocal {
		return apierr.New(codes.FailedPrecondition, CodeCorpusNotLocal,
			fmt.Sprintf("corpus %s is served by %s: its documents are managed there, not ingested here", corpus, provider),
			"corpus_id", corpus, "provider", provider)
	}
	return nil
}

// enqueue queues a document's job; the document is safe in Postgres either way.
func (s *Server) enqueue(ctx context.Context, d Document) {
	j := Job{Kind: KindIngest, TenantID: d.TenantID, CorpusID: d.CorpusID, DocumentID: d.DocumentID, Version: d.Version}
	if err := enqueue(ctx, s.queue, s.store, j); err != nil {
		s.log.WarnContext(ctx, "ingestion job not enqueued; the requeue sweep will retry", "document_id", d.DocumentID, "error", err)
	}
}

// GetDocument returns a document's status.
func (s *Server) GetDocument(ctx context.Context, req *ingestv1.GetDocumentRequest) (*ingestv1.GetDocumentResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	d, err := s.store.Get(ctx, p.TenantID, req.GetDocumentId())
	if err != nil {
		return nil, documentError(err, req.GetDocumentId(), d)
	}
	if !p.AllowsCorpus(d.CorpusID) {
		return nil, principal.CorpusForbidden(d.CorpusID)
	}
	return &ingestv1.GetDocumentResponse{Document: documentProto(d)}, nil
}

// requireDocumentCorpus refuses, with FORBIDDEN, a scoped key's call on a document of a
// corpus beyond its scope. An unscoped key costs no query. A missing document answers
// the store's errNotFound, mapped by documentError.
func (s *Server) requireDocumentCorpus(ctx context.Context, p principal.Principal, id string) error {
	if !p.Scoped() {
		return nil
	}
	d, err := s.store.Get(ctx, p.TenantID, id)
	if err != nil {
		return err
	}
	if !p.AllowsCorpus(d.CorpusID) {
		return principal.CorpusForbidden(d.CorpusID)
	}
	return nil
}

// decodePageToken reads a page_token this API issued.
func decodePageToken(token string) (*keyset.Position, error) {
	p, ok := keyset.Decode(token)
	if !ok {
		return nil, apierr.New(codes.InvalidArgument, CodeInvalidPageToken, "page_token is not one this API issued; start again without it", "field", "page_token")
	}
	return &p, nil
}

// ListDocuments lists the tenant's documents, newest first.
func (s *Server) ListDocuments(ctx context.Context, req *ingestv1.ListDocumentsRequest) (*ingestv1.ListDocumentsResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	q := ListQuery{CorpusID: req.GetCorpusId(), Status: req.GetStatus(), Limit: int(req.GetPageSize()), InCorpora: p.CorpusIDs}
	if q.CorpusID != "" && !p.AllowsCorpus(q.CorpusID) {
		return nil, principal.CorpusForbidden(q.CorpusID)
	}
	switch {
	case q.Limit == 0:
		q.Limit = defaultPageSize
	case q.Limit < 1 || q.Limit > maxPageSize:
		return nil, apierr.InvalidArgument("page_size", fmt.Sprintf("page_size must be 1 to %d", maxPageSize))
	}
	switch q.Status {
	case "", StatusQueued, StatusProcessing, StatusSucceeded, StatusFailed:
	default:
		return nil, apierr.InvalidArgument("status", "status must be one of queued, processing, succeeded, failed")
	}
	if t := req.GetPageToken(); t != "" {
		if q.After, err = decodePageToken(t); err != nil {
			return nil, err
		}
	}
	docs, err := s.store.List(ctx, p.TenantID, q)
	if err != nil {
		return nil, err
	}
	out := &ingestv1.ListDocumentsResponse{}
	if len(docs) > q.Limit {
		docs = docs[:q.Limit]
		last := docs[q.Limit-1]
		out.NextPageToken = keyset.Encode(keyset.Position{At: last.CreatedAt, ID: last.DocumentID})
	}
	for _, d := range docs {
		out.Documents = append(out.Documents, documentProto(d))
	}
	return out, nil
}

// ReindexDocument queues a document's ingestion again.
func (s *Server) ReindexDocument(ctx context.Context, req *ingestv1.ReindexDocumentRequest) (*ingestv1.ReindexDocumentResponse, error) {
	p, release, err := s.beginIngest(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	d, err := s.store.Reindex(ctx, p.TenantID, req.GetDocumentId(), func(doc Document) (ChunkOptions, error) {
		if !p.AllowsCorpus(doc.CorpusID) {
			return ChunkOptions{}, principal.CorpusForbidden(doc.CorpusID)
		}
		cur := ChunkOptions{Size: doc.ChunkSize, Overlap: doc.ChunkOverlap}
		if req.ChunkSizeChars != nil {
			cur.Size = int(req.GetChunkSizeChars())
		}
		if req.ChunkOverlapChars != nil {
			cur.Overlap = int(req.GetChunkOverlapChars())
		}
		if err := cur.Validate(); err != nil {
			return cur, chunkingError(err)
		}
		return cur, nil
	})
	if err != nil {
		return nil, documentError(err, req.GetDocumentId(), d)
	}
	s.enqueue(ctx, d)
	s.audit.Record(ctx, audit.Event{Type: audit.TypeReindexEnqueued, Outcome: audit.OutcomeSuccess, ResourceType: "document", ResourceID: d.DocumentID,
		Metadata: map[string]any{"corpus_id": d.CorpusID, "job_id": d.JobID, "chunk_size_chars": d.ChunkSize, "chunk_overlap_chars": d.ChunkOverlap}})
	return &ingestv1.ReindexDocumentResponse{DocumentId: d.DocumentID, JobId: d.JobID, StatusUrl: statusURL(d.DocumentID), Status: d.Status}, nil
}

// DeleteDocument removes a document and its chunks.
func (s *Server) DeleteDocument(ctx context.Context, req *ingestv1.DeleteDocumentRequest) (*ingestv1.DeleteDocumentResponse, error) {
	p, release, err := s.beginWrite(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := s.requireDocumentCorpus(ctx, p, req.GetDocumentId()); err != nil {
		return nil, documentError(err, req.GetDocumentId(), Document{})
	}
	if err := s.checkHold(ctx, p.TenantID, req.GetDocumentId(), "deleted"); err != nil {
		return nil, err
	}
	var removed int32
	d, err := s.store.Delete(ctx, p.TenantID, req.GetDocumentId(), func(d Document) error {
		if !p.AllowsCorpus(d.CorpusID) {
			return principal.CorpusForbidden(d.CorpusID)
		}
		res, err := s.retrieval.DeleteDocumentChunks(ctx, &retrievalv1.DeleteDocumentChunksRequest{TenantId: d.TenantID, CorpusId: d.CorpusID,
			DocumentId: d.DocumentID, Version: d.Version})
		removed = res.GetDeleted()
		return err
	})
	if err != nil {
		return nil, documentError(err, req.GetDocumentId(), d)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeDocumentDeleted, Outcome: audit.OutcomeSuccess, ResourceType: "document", ResourceID: d.DocumentID,
		Metadata: map[string]any{"corpus_id": d.CorpusID, "chunks_deleted": removed}})
	return &ingestv1.DeleteDocumentResponse{DocumentId: d.DocumentID, ChunksDeleted: removed}, nil
}

// checkHold refuses to destroy a held document (or one of a held tenant) with 409
// LEGAL_HOLD_ACTIVE; when governance cannot say, nothing is destroyed either.
func (s *Server) checkHold(ctx context.Context, tenant, id, what string) error {
	if s.holds == nil || id == "" {
		return nil
	}
	res, err := s.holds.CheckLegalHold(ctx, &governancev1.CheckLegalHoldRequest{TenantId: tenant,
		Scopes: []*governancev1.HoldScope{{ScopeType: "document", ScopeId: id}}})
	if err != nil {
		return err
	}
	if h := res.GetHeld(); h != nil {
		return apierr.New(codes.FailedPrecondition, "LEGAL_HOLD_ACTIVE",
			fmt.Sprintf("a legal hold (%d, on %s %s) keeps this document from being %s; release the hold first", h.GetHoldId(), h.GetScopeType(), h.GetScopeId(), what),
			"hold_id", fmt.Sprint(h.GetHoldId()), "scope_type", h.GetScopeType())
	}
	return nil
}

// documentError maps store errors to API errors; d is the document as found, when it was.
func documentError(err error, id string, d Document) error {
	switch {
	case errors.Is(err, errNotFound):
		return apierr.NotFound("document", id)
	case errors.Is(err, errExists):
		return apierr.New(codes.AlreadyExists, CodeDocumentExists,
			fmt.Sprintf("document %s exists; send overwrite=true to replace it", id), "document_id", id)
	case errors.Is(err, errBusy):
		return apierr.New(codes.FailedPrecondition, CodeDocumentBusy,
			fmt.Sprintf("document %s is %s; retry once its ingestion has finished", id, d.Status), "document_id", id, "status", d.Status)
	case errors.Is(err, errCorpusMismatch):
		return apierr.New(codes.FailedPrecondition, CodeDocumentCorpusMismatch,
			fmt.Sprintf("document %s belongs to corpus %s; delete it there first to move it", id, d.CorpusID), "document_id", id, "corpus_id", d.CorpusID)
	}
	return err
}

func chunkingError(err error) error {
	field := "chunk_size_chars"
	if strings.HasPrefix(err.Error(), "chunk_overlap_chars") {
		field = "chunk_overlap_chars"
	}
	return apierr.InvalidArgument(field, err.Error())
}

func statusURL(id string) string { return "/v1/documents/" + id }

func documentProto(d Document) *ingestv1.Document {
	ts := func(t *time.Time) *timestamppb.Timestamp {
		if t == nil {
			return nil
		}
		return timestamppb.New(*t)
	}
	return &ingestv1.Document{
		DocumentId: d.DocumentID, CorpusId: d.CorpusID, Filename: d.Filename, ContentType: d.ContentType, SizeBytes: int32(d.SizeBytes),
		Status: d.Status, FailureReason: d.FailureReason, ChunkCount: int32(d.ChunkCount),
		ChunkSizeChars: int32(d.ChunkSize), ChunkOverlapChars: int32(d.ChunkOverlap), Attempts: int32(d.Attempts), JobId: d.JobID,
		CreatedAt: timestamppb.New(d.CreatedAt), UpdatedAt: timestamppb.New(d.UpdatedAt), QueuedAt: timestamppb.New(d.QueuedAt),
		StartedAt: ts(d.StartedAt), FinishedAt: ts(d.FinishedAt),
	}
}

// WithRollouts makes the server follow the kill switches (kill.ingest refuses new
// documents and reindexing; deletes and reads go on).
func (s *Server) WithRollouts(c rollouts.Checker) *Server {
	s.rollouts = c
	return s
}

// Bulkhead is the bulkhead of concurrent writes (INGEST_MAX_CONCURRENCY; nil: none).
func (s *Server) Bulkhead() *bulkhead.Bulkhead { return s.writes }

// WithLegalHolds makes deletes check governance's legal holds first.
func (s *Server) WithLegalHolds(c governancev1.LegalHoldServiceClient) *Server {
	s.holds = c
	return s
}
