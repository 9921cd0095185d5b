package ingest_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/services/ingest"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

// harness is the ingest service over real Postgres and Redis, with the real retrieval
// service behind gRPC (the worker reaches the chunk index only through it).
type harness struct {
	pool      *pgxpool.Pool
	store     *ingest.Store
	queue     *ingest.Queue
	rdb       *redis.Client
	prefix    string
	client    ingestv1.IngestServiceClient
	retrieval retrievalv1.RetrievalServiceClient
	audit     *audittest.Recorder
}

const maxBytes = 64 << 10

func newHarness(t *testing.T) *harness {
	t.Helper()
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: retrieval.SessionParams()}, retrieval.Migrations(), ingest.Migrations())
	rdb, prefix := redistest.New(t)
	h := &harness{pool: pool, store: ingest.NewStore(pool), queue: ingest.NewQueue(rdb, prefix), rdb: rdb, prefix: prefix, audit: &audittest.Recorder{}}
	require.NoError(t, h.queue.Ensure(context.Background()))

	h.retrieval = h.retrievalWith(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	isrv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	isrv.Register(&ingestv1.IngestService_ServiceDesc, ingest.NewServer(h.store, h.queue, h.retrieval, h.audit, logging.Discard(), maxBytes, 0).WithWorker(3*time.Second))
	iconn, stop, err := grpcx.InProcess(isrv)
	require.NoError(t, err)
	t.Cleanup(stop)
	h.client = ingestv1.NewIngestServiceClient(iconn)
	return h
}

// retrievalWith serves another retrieval service over the same database, embedding with
// emb: a fake of its embedding stage.
func (h *harness) retrievalWith(t *testing.T, emb retrieval.Embedder) retrievalv1.RetrievalServiceClient {
	t.Helper()
	store := retrieval.NewStore(h.pool)
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&retrievalv1.RetrievalService_ServiceDesc, retrieval.NewServer(store,
		retrieval.NewRouter(retrieval.NewLocalIndex(store, emb), nil, nil, nil, nil), entitlements.Everything, &audittest.Recorder{}, logging.Discard()))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	return retrievalv1.NewRetrievalServiceClient(conn)
}

func as(tenant string, role apiv1.Role) context.Context {
	return principal.With(context.Background(), principal.Principal{TenantID: tenant, KeyID: "k", Role: role})
}

var (
	editor = as("t1", apiv1.Role_ROLE_EDITOR)
	reader = as("t1", apiv1.Role_ROLE_READER)
)

func (h *harness) corpus(t *testing.T, tenant, id string, cfg map[string]any) {
	t.Helper()
	s, err := structpb.NewStruct(cfg)
	require.NoError(t, err)
	_, err = h.retrieval.UpdateCorpus(as(tenant, apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: id, AllowMissing: true, ProviderConfigJson: s})
	require.NoError(t, err)
}

// worker runs a worker until the test ends (or stop is called).
func (h *harness) worker(t *testing.T, o ingest.WorkerOptions, client retrievalv1.RetrievalServiceClient) (stop func()) {
	t.Helper()
	if client == nil {
		client = h.retrieval
	}
	if o.Block == 0 {
		o.Block = 50 * time.Millisecond
	}
	w := ingest.NewWorker(h.store, h.queue, client, logging.Discard(), o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

func (h *harness) waitStatus(t *testing.T, id string, want string) *ingestv1.Document {
	t.Helper()
	var doc *ingestv1.Document
	require.Eventually(t, func() bool {
		res, err := h.client.GetDocument(reader, &ingestv1.GetDocumentRequest{DocumentId: id})
		require.NoError(t, err)
		doc = res.GetDocument()
		return doc.GetStatus() == want
	}, 10*time.Second, 10*time.Millisecond, "document %s never reached %s", id, want)
	return doc
}

func (h *harness) chunkRows(t *testing.T, tenant, corpus, doc string) int {
	t.Helper()
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM retrieval.chunks WHERE tenant_id = $1 AND corpus_id = $2 AND document_id = $3`, tenant, corpus, doc).Scan(&n))
	return n
}

func code(err error) string {
	e, _ := apierr.FromStatus(status.Convert(err))
	return e.Code
}

const gatesDoc = `# Agent 2.0 release gates

Every release candidate passes the evaluation suite with an nDCG@10 of at least 0.31.

## Rollback

A release can be rolled back within ten minutes by flipping the deployment flag.`

func TestDocumentIsIngestedAndRetrievable(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	h.worker(t, ingest.WorkerOptions{}, nil)

	res, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: gatesDoc, DocumentId: "gates",
		Filename: "gates.md", ContentType: "text/markdown", ChunkSizeChars: 100, ChunkOverlapChars: 0})
	require.NoError(t, err)
	require.Equal(t, "gates", res.GetDocumentId())
	require.Equal(t, "/v1/documents/gates", res.GetStatusUrl())
	require.Equal(t, ingest.StatusQueued, res.GetStatus())
	require.True(t, strings.HasPrefix(res.GetJobId(), "job_"))

	doc := h.waitStatus(t, "gates", ingest.StatusSucceeded)
	require.EqualValues(t, 3, doc.GetChunkCount(), "a heading and its text per chunk")
	require.Equal(t, res.GetJobId(), doc.GetJobId())
	require.EqualValues(t, 1, doc.GetAttempts())
	require.NotNil(t, doc.GetStartedAt())
	require.NotNil(t, doc.GetFinishedAt())
	require.Empty(t, doc.GetFailureReason())
	require.Equal(t, 3, h.chunkRows(t, "t1", "c1", "gates"))

	hits, err := h.retrieval.Retrieve(reader, &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "how fast can a release be rolled back", TopK: 1})
	require.NoError(t, err)
	require.Len(t, hits.GetChunks(), 1)
	require.Equal(t, "gates", hits.GetChunks()[0].GetDocumentId())
	require.Contains(t, hits.GetChunks()[0].GetText(), "## Rollback")
	require.Equal(t, "gates.md", hits.GetChunks()[0].GetMetadata().AsMap()["filename"])
	require.Contains(t, h.audit.Types(), audit.TypeIngestEnqueued)

	// A server-chosen id.
	res, err = h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "plain words"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(res.GetDocumentId(), "doc_"))
	h.waitStatus(t, res.GetDocumentId(), ingest.StatusSucceeded)
}

func TestCreateDocumentErrors(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	h.corpus(t, "t1", "c2", map[string]any{})
	h.corpus(t, "t1", "kb", map[string]any{"retrieval": map[string]any{"provider": "aws_bedrock_kb", "knowledge_base_id": "KB1", "region": "us-east-1"}})
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "first", DocumentId: "d1"})
	require.NoError(t, err)

	ok := &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "some text"}
	with := func(f func(r *ingestv1.CreateDocumentRequest)) *ingestv1.CreateDocumentRequest {
		r := proto.Clone(ok).(*ingestv1.CreateDocumentRequest)
		f(r)
		return r
	}
	tests := []struct {
		name  string
		ctx   context.Context
		req   *ingestv1.CreateDocumentRequest
		code  string
		grpc  codes.Code
		field string
	}{
		{"unknown corpus", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.CorpusId = "nope" }), apierr.CodeNotFound, codes.NotFound, ""},
		{"another tenant's corpus", as("t2", apiv1.Role_ROLE_EDITOR), ok, apierr.CodeNotFound, codes.NotFound, ""},
		{"no corpus", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.CorpusId = "" }), apierr.CodeInvalidArgument, codes.InvalidArgument, "corpus_id"},
		{"empty text", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.Text = "" }), apierr.CodeInvalidArgument, codes.InvalidArgument, "text"},
		{"blank text", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.Text = " \n\t " }), apierr.CodeInvalidArgument, codes.InvalidArgument, "text"},
		{"too large", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.Text = strings.Repeat("a", maxBytes+1) }), apierr.CodePayloadTooLarge, codes.InvalidArgument, ""},
		{"unsupported type", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.ContentType = "application/msword" }), apierr.CodeUnsupportedMediaType, codes.InvalidArgument, "content_type"},
		{"PDF as text", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.ContentType = "application/pdf" }), apierr.CodeInvalidArgument, codes.InvalidArgument, "text"},
		{"PDF without a file", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.ContentType, r.Text = "application/pdf", "" }), apierr.CodeInvalidArgument, codes.InvalidArgument, "file"},
		{"not a PDF", editor, with(func(r *ingestv1.CreateDocumentRequest) {
			r.ContentType, r.Text, r.File = "application/pdf", "", []byte("<html>")
		}), apierr.CodeInvalidArgument, codes.InvalidArgument, "file"},
		{"PDF too large", editor, with(func(r *ingestv1.CreateDocumentRequest) {
			r.ContentType, r.Text, r.File = "application/pdf", "", append([]byte("%PDF-1.4\n"), make([]byte, maxBytes)...)
		}), apierr.CodePayloadTooLarge, codes.InvalidArgument, ""},
		{"a file for text", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.File = []byte("%PDF-1.4") }), apierr.CodeInvalidArgument, codes.InvalidArgument, "file"},
		{"bad document id", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.DocumentId = "a/b" }), apierr.CodeInvalidArgument, codes.InvalidArgument, "document_id"},
		{"control characters in filename", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.Filename = "a\nb" }), apierr.CodeInvalidArgument, codes.InvalidArgument, "filename"},
		{"chunk size too small", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.ChunkSizeChars = 10 }), apierr.CodeInvalidArgument, codes.InvalidArgument, "chunk_size_chars"},
		{"overlap over half", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.ChunkSizeChars, r.ChunkOverlapChars = 200, 150 }), apierr.CodeInvalidArgument, codes.InvalidArgument, "chunk_overlap_chars"},
		{"exists without overwrite", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.DocumentId = "d1" }), ingest.CodeDocumentExists, codes.AlreadyExists, ""},
		{"overwrite while queued", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.DocumentId, r.Overwrite = "d1", true }), ingest.CodeDocumentBusy, codes.FailedPrecondition, ""},
		{"overwrite from another corpus", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.DocumentId, r.Overwrite, r.CorpusId = "d1", true, "c2" }), ingest.CodeDocumentCorpusMismatch, codes.FailedPrecondition, ""},
		{"bedrock corpus", editor, with(func(r *ingestv1.CreateDocumentRequest) { r.CorpusId = "kb" }), ingest.CodeCorpusNotLocal, codes.FailedPrecondition, ""},
		{"reader", reader, ok, apierr.CodeForbidden, codes.PermissionDenied, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.CreateDocument(tt.ctx, tt.req)
			require.Error(t, err)
			require.Equal(t, tt.grpc, status.Code(err), err.Error())
			e, _ := apierr.FromStatus(status.Convert(err))
			require.Equal(t, tt.code, e.Code, e.Message)
			if tt.field != "" {
				require.Equal(t, tt.field, e.Details["field"])
			}
		})
	}
	var n int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM ingest.documents`).Scan(&n))
	require.Equal(t, 1, n, "refused requests store nothing")
}

// TestRepeatedCreateIsIdempotent: the same document_id with the same text and options is
// answered with the document and job the first request made, queued or done, and starts
// nothing; different content still needs overwrite.
func TestRepeatedCreateIsIdempotent(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	req := &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: gatesDoc, DocumentId: "gates", Filename: "gates.md", ContentType: "text/markdown", ChunkSizeChars: 300}
	first, err := h.client.CreateDocument(editor, req)
	require.NoError(t, err)
	again, err := h.client.CreateDocument(editor, req)
	require.NoError(t, err)
	require.True(t, proto.Equal(first, again), "same answer while queued: %v / %v", first, again)

	h.worker(t, ingest.WorkerOptions{}, nil)
	h.waitStatus(t, "gates", ingest.StatusSucceeded)
	later, err := h.client.CreateDocument(editor, req)
	require.NoError(t, err)
	require.Equal(t, first.GetJobId(), later.GetJobId(), "no new job")
	require.Equal(t, ingest.StatusSucceeded, later.GetStatus())
	require.False(t, later.GetReplaced())
	var version int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT version FROM ingest.documents WHERE document_id = 'gates'`).Scan(&version))
	require.Equal(t, 1, version, "no new version")

	for name, mut := range map[string]func(r *ingestv1.CreateDocumentRequest){
		"other text":     func(r *ingestv1.CreateDocumentRequest) { r.Text += " More." },
		"other chunking": func(r *ingestv1.CreateDocumentRequest) { r.ChunkSizeChars = 400 },
		"other filename": func(r *ingestv1.CreateDocumentRequest) { r.Filename = "gates-v2.md" },
	} {
		r := proto.Clone(req).(*ingestv1.CreateDocumentRequest)
		mut(r)
		_, err := h.client.CreateDocument(editor, r)
		require.Equal(t, ingest.CodeDocumentExists, code(err), name)
	}
}

func TestOverwriteReplacesChunks(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	h.worker(t, ingest.WorkerOptions{}, nil)
	long := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 40)
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: long, DocumentId: "d1", ChunkSizeChars: 200})
	require.NoError(t, err)
	first := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	require.Greater(t, first.GetChunkCount(), int32(5))

	res, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "short now", DocumentId: "d1", Overwrite: true})
	require.NoError(t, err)
	require.True(t, res.GetReplaced())
	require.NotEqual(t, first.GetJobId(), res.GetJobId())
	second := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	require.EqualValues(t, 1, second.GetChunkCount())
	require.Equal(t, 1, h.chunkRows(t, "t1", "c1", "d1"), "the old chunks are gone")
}

func TestListDocuments(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	h.corpus(t, "t1", "c2", map[string]any{})
	h.corpus(t, "t2", "c1", map[string]any{})
	for i, c := range []string{"c1", "c2", "c1", "c1", "c2"} {
		_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: c, Text: "text", DocumentId: "d" + string(rune('0'+i))})
		require.NoError(t, err)
	}
	_, err := h.client.CreateDocument(as("t2", apiv1.Role_ROLE_EDITOR), &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "other tenant", DocumentId: "x"})
	require.NoError(t, err)

	var ids []string
	token := ""
	for {
		res, err := h.client.ListDocuments(reader, &ingestv1.ListDocumentsRequest{PageSize: 2, PageToken: token})
		require.NoError(t, err)
		require.LessOrEqual(t, len(res.GetDocuments()), 2)
		for _, d := range res.GetDocuments() {
			ids = append(ids, d.GetDocumentId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Equal(t, []string{"d4", "d3", "d2", "d1", "d0"}, ids, "newest first, every page, only the tenant's")

	res, err := h.client.ListDocuments(reader, &ingestv1.ListDocumentsRequest{CorpusId: "c2"})
	require.NoError(t, err)
	require.Len(t, res.GetDocuments(), 2)
	res, err = h.client.ListDocuments(reader, &ingestv1.ListDocumentsRequest{Status: ingest.StatusQueued})
	require.NoError(t, err)
	require.Len(t, res.GetDocuments(), 5)
	res, err = h.client.ListDocuments(reader, &ingestv1.ListDocumentsRequest{Status: ingest.StatusSucceeded})
	require.NoError(t, err)
	require.Empty(t, res.GetDocuments())

	for name, req := range map[string]*ingestv1.ListDocumentsRequest{
		"bad status":     {Status: "done"},
		"bad page size":  {PageSize: 500},
		"garbage cursor": {PageToken: "not-a-token"},
		"json of junk":   {PageToken: "eyJ4IjoxfQ"},
	} {
		_, err := h.client.ListDocuments(reader, req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), name)
	}
	_, err = h.client.ListDocuments(reader, &ingestv1.ListDocumentsRequest{PageToken: "eyJ4IjoxfQ"})
	require.Equal(t, ingest.CodeInvalidPageToken, code(err))
}

func TestReindexAndDelete(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	text := strings.Repeat("Release gates protect the users of Agent 2.0 from regressions. ", 30)
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: text, DocumentId: "d1"})
	require.NoError(t, err)

	// While queued, neither reindex nor delete.
	_, err = h.client.ReindexDocument(editor, &ingestv1.ReindexDocumentRequest{DocumentId: "d1"})
	require.Equal(t, ingest.CodeDocumentBusy, code(err))
	_, err = h.client.DeleteDocument(editor, &ingestv1.DeleteDocumentRequest{DocumentId: "d1"})
	require.Equal(t, ingest.CodeDocumentBusy, code(err))
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	h.worker(t, ingest.WorkerOptions{}, nil)
	first := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	require.Positive(t, first.GetChunkCount())

	for name, req := range map[string]*ingestv1.ReindexDocumentRequest{
		"size too small":   {DocumentId: "d1", ChunkSizeChars: proto.Int32(5)},
		"size too large":   {DocumentId: "d1", ChunkSizeChars: proto.Int32(1_000_000)},
		"negative overlap": {DocumentId: "d1", ChunkOverlapChars: proto.Int32(-1)},
		"overlap too big":  {DocumentId: "d1", ChunkSizeChars: proto.Int32(200), ChunkOverlapChars: proto.Int32(101)},
	} {
		_, err := h.client.ReindexDocument(editor, req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), name)
	}
	_, err = h.client.ReindexDocument(editor, &ingestv1.ReindexDocumentRequest{DocumentId: "nope"})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = h.client.ReindexDocument(reader, &ingestv1.ReindexDocumentRequest{DocumentId: "d1"})
	require.Equal(t, codes.PermissionDenied, status.Code(err))

	res, err := h.client.ReindexDocument(editor, &ingestv1.ReindexDocumentRequest{DocumentId: "d1", ChunkSizeChars: proto.Int32(300), ChunkOverlapChars: proto.Int32(50)})
	require.NoError(t, err)
	require.Equal(t, ingest.StatusQueued, res.GetStatus())
	second := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	require.EqualValues(t, 300, second.GetChunkSizeChars())
	require.Greater(t, second.GetChunkCount(), first.GetChunkCount())
	require.Equal(t, int(second.GetChunkCount()), h.chunkRows(t, "t1", "c1", "d1"))

	_, err = h.client.DeleteDocument(as("t2", apiv1.Role_ROLE_EDITOR), &ingestv1.DeleteDocumentRequest{DocumentId: "d1"})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant cannot touch it")
	del, err := h.client.DeleteDocument(editor, &ingestv1.DeleteDocumentRequest{DocumentId: "d1"})
	require.NoError(t, err)
	require.Equal(t, second.GetChunkCount(), del.GetChunksDeleted())
	require.Equal(t, 0, h.chunkRows(t, "t1", "c1", "d1"))
	_, err = h.client.GetDocument(reader, &ingestv1.GetDocumentRequest{DocumentId: "d1"})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = h.client.DeleteDocument(editor, &ingestv1.DeleteDocumentRequest{DocumentId: "d1"})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Subset(t, h.audit.Types(), []string{audit.TypeIngestEnqueued, audit.TypeReindexEnqueued, audit.TypeDocumentDeleted})
}

// TestConcurrentDeletesDoNotStarveThePool: a delete calls the retrieval service, which
// shares the connection pool in the all-in-one process; no transaction may stay open
// across that call, or as many concurrent deletes as connections deadlock.
func TestConcurrentDeletesDoNotStarveThePool(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	h.worker(t, ingest.WorkerOptions{}, nil)
	const n = 16 // the test pool has 4 connections
	for i := range n {
		_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "words to delete", DocumentId: fmt.Sprintf("d%d", i)})
		require.NoError(t, err)
	}
	for i := range n {
		h.waitStatus(t, fmt.Sprintf("d%d", i), ingest.StatusSucceeded)
	}
	ctx, cancel := context.WithTimeout(editor, 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := h.client.DeleteDocument(ctx, &ingestv1.DeleteDocumentRequest{DocumentId: fmt.Sprintf("d%d", i)})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	var left int
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT count(*) FROM retrieval.chunks`).Scan(&left))
	require.Zero(t, left)
}

// slowCorpus is the real retrieval client whose GetCorpus waits for release.
type slowCorpus struct {
	retrievalv1.RetrievalServiceClient
	entered, release chan struct{}
}

func (s slowCorpus) GetCorpus(ctx context.Context, in *retrievalv1.GetCorpusRequest, opts ...grpc.CallOption) (*retrievalv1.GetCorpusResponse, error) {
	s.entered <- struct{}{}
	<-s.release
	return s.RetrievalServiceClient.GetCorpus(ctx, in, opts...)
}

// TestUploadsBeyondTheBulkheadAreRefusedAtOnce: INGEST_MAX_CONCURRENCY uploads at a time;
// the next answers SERVICE_BUSY at once instead of waiting.
func TestUploadsBeyondTheBulkheadAreRefusedAtOnce(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	slow := slowCorpus{RetrievalServiceClient: h.retrieval, entered: make(chan struct{}, 1), release: make(chan struct{})}
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&ingestv1.IngestService_ServiceDesc, ingest.NewServer(h.store, h.queue, slow, h.audit, logging.Discard(), maxBytes, 1))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	client := ingestv1.NewIngestServiceClient(conn)

	done := make(chan error, 1)
	go func() {
		_, err := client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "first", DocumentId: "d1"})
		done <- err
	}()
	<-slow.entered
	_, err = client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "second", DocumentId: "d2"})
	require.Equal(t, "SERVICE_BUSY", code(err))
	require.Equal(t, codes.Unavailable, status.Code(err))
	close(slow.release)
	require.NoError(t, <-done)
	go func() { <-slow.entered }()
	_, err = client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "third", DocumentId: "d3"})
	require.NoError(t, err, "the slot is free again")
}
