package ingest_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/services/ingest"
)

// faultyRetrieval is the real retrieval client with the worker's write replaced by
// upsert, whose answer comes as the stream's result (without progress events).
type faultyRetrieval struct {
	retrievalv1.RetrievalServiceClient
	upsert func(ctx context.Context, in *retrievalv1.UpsertDocumentsRequest, opts ...grpc.CallOption) (*retrievalv1.UpsertDocumentsResponse, error)
}

func (f faultyRetrieval) UpsertDocumentsWithProgress(ctx context.Context, in *retrievalv1.UpsertDocumentsWithProgressRequest,
	opts ...grpc.CallOption) (grpc.ServerStreamingClient[retrievalv1.UpsertDocumentsWithProgressResponse], error) {
	res, err := f.upsert(ctx, &retrievalv1.UpsertDocumentsRequest{TenantId: in.GetTenantId(), CorpusId: in.GetCorpusId(), Documents: in.GetDocuments()}, opts...)
	if err != nil {
		return nil, err
	}
	return &resultStream{res: res}, nil
}

// resultStream is a stream of one result.
type resultStream struct {
	grpc.ClientStream
	res *retrievalv1.UpsertDocumentsResponse
}

func (s *resultStream) Recv() (*retrievalv1.UpsertDocumentsWithProgressResponse, error) {
	if s.res == nil {
		return nil, io.EOF
	}
	ev := &retrievalv1.UpsertDocumentsWithProgressResponse{Event: &retrievalv1.UpsertDocumentsWithProgressResponse_Result{Result: s.res}}
	s.res = nil
	return ev, nil
}

// TestKilledWorkerJobIsRedoneWithoutDuplicates kills a worker mid-job at the worst
// moment: its chunks are committed but the job is neither recorded nor acknowledged.
// Another worker takes the job over once it has been idle for the claim timeout, redoes
// it, and the index holds each chunk once.
func TestKilledWorkerJobIsRedoneWithoutDuplicates(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	text := strings.Repeat("Agent 2.0 ships behind release gates that check quality. ", 40)
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: text, DocumentId: "d1", ChunkSizeChars: 300})
	require.NoError(t, err)

	committed := make(chan struct{})
	never := make(chan struct{})
	dying := faultyRetrieval{RetrievalServiceClient: h.retrieval,
		upsert: func(ctx context.Context, in *retrievalv1.UpsertDocumentsRequest, opts ...grpc.CallOption) (*retrievalv1.UpsertDocumentsResponse, error) {
			res, err := h.retrieval.UpsertDocuments(ctx, in, opts...)
			close(committed)
			<-never // the process is gone: nothing after this point happens
			return res, err
		}}
	const claim = 300 * time.Millisecond
	killA := h.worker(t, ingest.WorkerOptions{Consumer: "worker-a", ClaimTimeout: claim}, dying)
	t.Cleanup(func() { close(never) }) // runs before the worker's own cleanup, which waits for it
	<-committed
	go killA() // stops its loops (no more touching or heartbeats); the job stays pending under worker-a

	doc := h.waitStatus(t, "d1", ingest.StatusProcessing)
	want := h.chunkRows(t, "t1", "c1", "d1")
	require.Positive(t, want)

	h.worker(t, ingest.WorkerOptions{Consumer: "worker-b", ClaimTimeout: claim}, nil)
	doc = h.waitStatus(t, "d1", ingest.StatusSucceeded)
	require.EqualValues(t, 2, doc.GetAttempts(), "redone once")
	require.EqualValues(t, want, doc.GetChunkCount())
	require.Equal(t, want, h.chunkRows(t, "t1", "c1", "d1"), "no duplicate chunks")
	var distinct int
	require.NoError(t, h.pool.QueryRow(context.Background(),
		`SELECT count(DISTINCT ordinal) FROM retrieval.chunks WHERE tenant_id = 't1' AND document_id = 'd1'`).Scan(&distinct))
	require.Equal(t, want, distinct)
	require.Eventually(t, func() bool { n, _ := h.queue.Pending(context.Background()); return n == 0 }, 5*time.Second, 10*time.Millisecond,
		"the job is acknowledged")

	beat, err := h.queue.LastHeartbeat(context.Background(), "worker-b")
	require.NoError(t, err)
	require.False(t, beat.IsZero(), "the worker reports a heartbeat")
}

// TestRepeatedJobChangesNothing delivers a finished job again (as after a failed ack).
func TestRepeatedJobChangesNothing(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	var calls atomic.Int32
	counting := faultyRetrieval{RetrievalServiceClient: h.retrieval,
		upsert: func(ctx context.Context, in *retrievalv1.UpsertDocumentsRequest, opts ...grpc.CallOption) (*retrievalv1.UpsertDocumentsResponse, error) {
			calls.Add(1)
			return h.retrieval.UpsertDocuments(ctx, in, opts...)
		}}
	h.worker(t, ingest.WorkerOptions{}, counting)
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "one two three", DocumentId: "d1"})
	require.NoError(t, err)
	doc := h.waitStatus(t, "d1", ingest.StatusSucceeded)

	_, err = h.queue.Enqueue(context.Background(), ingest.Job{Kind: ingest.KindIngest, TenantID: "t1", CorpusID: "c1", DocumentID: "d1", Version: 1})
	require.NoError(t, err)
	_, err = h.queue.Enqueue(context.Background(), ingest.Job{Kind: ingest.KindIngest, TenantID: "t1", CorpusID: "c1", DocumentID: "gone", Version: 1})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		n, _ := h.rdb.XLen(context.Background(), h.prefix+"ingest:jobs").Result()
		return n == 0
	}, 5*time.Second, 10*time.Millisecond, "stale jobs are acknowledged and dropped")
	require.EqualValues(t, 1, calls.Load(), "a finished job is not redone")
	again := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	require.Equal(t, doc.GetFinishedAt().AsTime(), again.GetFinishedAt().AsTime())
	require.Equal(t, 1, h.chunkRows(t, "t1", "c1", "d1"))
}

// TestFailures: a document the index refuses fails alone with the reason; a transient
// failure is retried and gives up after the attempts allowed.
func TestFailures(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	refusing := faultyRetrieval{RetrievalServiceClient: h.retrieval,
		upsert: func(ctx context.Context, in *retrievalv1.UpsertDocumentsRequest, opts ...grpc.CallOption) (*retrievalv1.UpsertDocumentsResponse, error) {
			for _, d := range in.GetDocuments() {
				// Errors as the retrieval service answers them: every one with its code.
				if d.GetDocumentId() == "bad" {
					return nil, apierr.InvalidArgument("chunks", "this document cannot be indexed")
				}
				if d.GetDocumentId() == "flaky" {
					return nil, apierr.New(codes.Unavailable, apierr.CodeUnavailable, "retrieval is restarting")
				}
			}
			return h.retrieval.UpsertDocuments(ctx, in, opts...)
		}}
	// Queue all three before the worker starts, so that they share a batch.
	for _, id := range []string{"good", "bad", "flaky"} {
		_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "some words " + id, DocumentId: id})
		require.NoError(t, err)
	}
	h.worker(t, ingest.WorkerOptions{ClaimTimeout: 150 * time.Millisecond, MaxAttempts: 3}, refusing)

	h.waitStatus(t, "good", ingest.StatusSucceeded)
	bad := h.waitStatus(t, "bad", ingest.StatusFailed)
	require.Equal(t, "INVALID_ARGUMENT: this document cannot be indexed", bad.GetFailureReason())
	flaky := h.waitStatus(t, "flaky", ingest.StatusFailed)
	require.Equal(t, "gave up after 3 attempts: SERVICE_UNAVAILABLE: retrieval is restarting", flaky.GetFailureReason())
	require.EqualValues(t, 3, flaky.GetAttempts())
	require.Equal(t, 0, h.chunkRows(t, "t1", "c1", "bad"))

	// A failed document can be reindexed (here it fails again, the same way).
	_, err := h.client.ReindexDocument(editor, &ingestv1.ReindexDocumentRequest{DocumentId: "bad"})
	require.NoError(t, err)
}

// TestDocumentsSurviveAnUnreachableQueue: with Redis down the document is still
// accepted, stays queued in Postgres, and the requeue sweep enqueues it later.
func TestDocumentsSurviveAnUnreachableQueue(t *testing.T) {
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = dead.Close() })
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&ingestv1.IngestService_ServiceDesc, ingest.NewServer(h.store, ingest.NewQueue(dead, h.prefix), h.retrieval, h.audit, logging.Discard(), maxBytes, 0))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	client := ingestv1.NewIngestServiceClient(conn)

	res, err := client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "kept safe", DocumentId: "d1"})
	require.NoError(t, err)
	require.Equal(t, ingest.StatusQueued, res.GetStatus())
	n, err := h.rdb.XLen(context.Background(), h.prefix+"ingest:jobs").Result()
	require.NoError(t, err)
	require.Zero(t, n, "nothing reached the queue")

	h.worker(t, ingest.WorkerOptions{ClaimTimeout: 150 * time.Millisecond, RequeueGrace: time.Millisecond}, nil)
	doc := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	require.EqualValues(t, 1, doc.GetChunkCount())
}
