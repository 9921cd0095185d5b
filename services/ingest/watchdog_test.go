package ingest_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/ingest"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

// stage fakes the embedding stage of a real retrieval service: it embeds as the offline
// embedder does, one chunk per request (so that each chunk is a progress event), after
// step has let the chunk through.
type stage struct {
	*retrieval.HashEmbedder
	step func(ctx context.Context, chunk string) error
}

func newStage(step func(ctx context.Context, chunk string) error) stage {
	return stage{HashEmbedder: retrieval.NewHashEmbedder(retrieval.DefaultDim), step: step}
}

func (s stage) BatchSize() int { return 1 }

func (s stage) EmbedDocuments(ctx context.Context, texts []string) ([][]float32, error) {
	if err := s.step(ctx, texts[0]); err != nil {
		return nil, err
	}
	return s.HashEmbedder.EmbedDocuments(ctx, texts)
}

// stall makes no progress until the worker gives up on the call.
func stall(ctx context.Context) error {
	<-ctx.Done()
	return ctx.Err()
}

// Timings of the watchdog tests: a stall is noticed after stallTimeout, and a failed
// attempt is retried once its job has been idle for claimTimeout. Every step that makes
// progress (a chunk embedded, a write, a statement) must end within stallTimeout: ample
// on two cores running two test suites under the race detector. The tests run in
// parallel: they mostly wait.
const (
	stallTimeout = time.Second
	claimTimeout = 200 * time.Millisecond
)

// watched are the options of a worker under the watchdog tests.
func watched(o ingest.WorkerOptions) ingest.WorkerOptions {
	o.StallTimeout, o.ClaimTimeout, o.MaxAttempts = stallTimeout, claimTimeout, 3
	return o
}

// threeChunks is a document the worker cuts into three chunks (chunk_size_chars 100).
const threeChunks = "The lighthouse keeper lights the lamp at dusk and trims the wick twice in the night.\n\n" +
	"Fuel for the lamp comes by boat on the first Monday of the month, weather permitting.\n\n" +
	"In fog the keeper sounds the horn every thirty seconds until the fog lifts at last."

// TestStalledStageIsRetried: a stage that stops making progress half-way is cut off after
// INGEST_STALL_TIMEOUT (not before), the attempt fails with INGEST_STALLED saying where it
// stalled, and the job is retried, and succeeds, as the same version.
func TestStalledStageIsRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	chunks := ingest.Chunk(threeChunks, ingest.ChunkOptions{Size: 100})
	require.Len(t, chunks, 3)
	var calls atomic.Int32
	waited := make(chan time.Duration, 1)
	duringRetry := make(chan *ingestv1.Document, 1)
	stalling := newStage(func(ctx context.Context, chunk string) error {
		switch n := calls.Add(1); n {
		case 2: // the first attempt's second chunk
			start := time.Now()
			err := stall(ctx)
			waited <- time.Since(start)
			return err
		case 3: // the retry's first chunk: the document says why it is retried
			res, err := h.client.GetDocument(reader, &ingestv1.GetDocumentRequest{DocumentId: "d1"})
			if err != nil {
				return err
			}
			duringRetry <- res.GetDocument()
		}
		return nil
	})
	h.worker(t, watched(ingest.WorkerOptions{}), h.retrievalWith(t, stalling))
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: threeChunks, DocumentId: "d1", ChunkSizeChars: 100, ChunkOverlapChars: 0})
	require.NoError(t, err)

	doc := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	// From the last progress the worker saw, which may precede the stall's start by a hair.
	require.GreaterOrEqual(t, <-waited, stallTimeout*9/10, "the watchdog waited the stall timeout")
	retry := <-duringRetry
	require.Equal(t, ingest.StatusProcessing, retry.GetStatus())
	require.EqualValues(t, 2, retry.GetAttempts())
	require.Equal(t, "INGEST_STALLED: no progress for 1s after 1 of 3 chunks were embedded", retry.GetFailureReason())
	require.Equal(t, retry.GetJobId(), doc.GetJobId(), "the same job, retried")
	require.EqualValues(t, 2, doc.GetAttempts())
	require.Empty(t, doc.GetFailureReason())
	require.EqualValues(t, 3, doc.GetChunkCount())
	require.Equal(t, 3, h.chunkRows(t, "t1", "c1", "d1"))
	require.EqualValues(t, 5, calls.Load(), "two chunks, then three")
}

// TestSlowProgressingStageIsNeverKilled: a document whose stage takes far longer than the
// stall timeout, the claim timeout and the requeue sweep's INGEST_REQUEUE_AFTER, but
// keeps making progress, is indexed in one attempt: nothing cuts it off, and nobody
// takes its job over or queues it again.
func TestSlowProgressingStageIsNeverKilled(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	text := strings.Repeat(threeChunks+"\n\n", 3)
	want := len(ingest.Chunk(text, ingest.ChunkOptions{Size: 100}))
	var calls atomic.Int32
	slow := newStage(func(ctx context.Context, _ string) error {
		calls.Add(1)
		select { // each chunk takes well under the stall timeout; all of them, many times it
		case <-time.After(stallTimeout / 4):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	h.worker(t, watched(ingest.WorkerOptions{RequeueAfter: stallTimeout}), h.retrievalWith(t, slow))
	start := time.Now()
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: text, DocumentId: "big", ChunkSizeChars: 100, ChunkOverlapChars: 0})
	require.NoError(t, err)

	doc := h.waitStatus(t, "big", ingest.StatusSucceeded)
	took := time.Since(start)
	require.Greater(t, took, 2*stallTimeout, "twice the stall timeout, longer than the claim timeout and the requeue sweep")
	require.EqualValues(t, 1, doc.GetAttempts(), "never cut off, taken over or queued again")
	require.EqualValues(t, want, calls.Load(), "each chunk embedded once")
	require.EqualValues(t, want, doc.GetChunkCount())
	t.Logf("%d chunks in %s", want, took.Round(time.Millisecond))
}

// TestPoisonDocumentIsDeadLettered: a document on which the stage stalls every time stalls
// its batch once; then each document is retried alone, so its neighbour succeeds while it
// runs out of attempts and becomes a dead letter, listed by GetIngestionStats. An admin
// requeues it under the same job id (audited); requeueing an unknown job, or one that is
// not a dead letter, is refused with a code.
func TestPoisonDocumentIsDeadLettered(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.corpus(t, "t1", "c1", map[string]any{})
	h.corpus(t, "t1", "c2", map[string]any{})
	var cured atomic.Bool
	poisoned := newStage(func(ctx context.Context, chunk string) error {
		if strings.Contains(chunk, "poison") && !cured.Load() {
			return stall(ctx)
		}
		return nil
	})
	// Both are queued before the worker starts, so that they share a batch.
	for _, id := range []string{"good", "poison"} {
		_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: "The " + id + " document.", DocumentId: id})
		require.NoError(t, err)
	}
	h.worker(t, watched(ingest.WorkerOptions{}), h.retrievalWith(t, poisoned))

	good := h.waitStatus(t, "good", ingest.StatusSucceeded)
	require.EqualValues(t, 2, good.GetAttempts(), "stalled once with the poison, then indexed alone")
	dead := h.waitStatus(t, "poison", ingest.StatusFailed)
	require.EqualValues(t, 3, dead.GetAttempts())
	require.Equal(t, "gave up after 3 attempts: INGEST_STALLED: no progress for 1s before any chunk was embedded", dead.GetFailureReason())

	admin := as("t1", apiv1.Role_ROLE_ADMIN)
	stats, err := h.client.GetIngestionStats(admin, &ingestv1.GetIngestionStatsRequest{})
	require.NoError(t, err)
	require.EqualValues(t, 1, stats.GetDeadLetters())
	require.Len(t, stats.GetDeadLetterJobs(), 1)
	letter := stats.GetDeadLetterJobs()[0]
	require.Equal(t, dead.GetJobId(), letter.GetJobId())
	require.Equal(t, "poison", letter.GetDocumentId())
	require.Equal(t, "c1", letter.GetCorpusId())
	require.EqualValues(t, 3, letter.GetAttempts())
	require.Equal(t, dead.GetFailureReason(), letter.GetFailureReason())
	require.Equal(t, "/v1/ops/ingestion/dead-letters/"+dead.GetJobId()+"/requeue", letter.GetRequeueUrl())
	require.Equal(t, []*ingestv1.FailureCount{{Reason: ingest.CodeIngestStalled, Count: 1}}, stats.GetFailures(), "counted by the stall's code")

	scoped := principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "s", Role: apiv1.Role_ROLE_ADMIN, CorpusIDs: []string{"c2"}})
	stats, err = h.client.GetIngestionStats(scoped, &ingestv1.GetIngestionStatsRequest{})
	require.NoError(t, err)
	require.Empty(t, stats.GetDeadLetterJobs(), "a key scoped to c2 lists none of c1's")
	_, err = h.client.RequeueDeadLetter(scoped, &ingestv1.RequeueDeadLetterRequest{JobId: dead.GetJobId()})
	require.Equal(t, apierr.CodeForbidden, code(err))
	_, err = h.client.RequeueDeadLetter(as("t2", apiv1.Role_ROLE_ADMIN), &ingestv1.RequeueDeadLetterRequest{JobId: dead.GetJobId()})
	require.Equal(t, codes.NotFound, status.Code(err), "another tenant's job is unknown")
	_, err = h.client.RequeueDeadLetter(admin, &ingestv1.RequeueDeadLetterRequest{JobId: "job_unknown"})
	require.Equal(t, codes.NotFound, status.Code(err))
	require.Equal(t, apierr.CodeNotFound, code(err))
	_, err = h.client.RequeueDeadLetter(admin, &ingestv1.RequeueDeadLetterRequest{JobId: good.GetJobId()})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, ingest.CodeNotADeadLetter, code(err))
	require.Equal(t, "job "+good.GetJobId()+" of document good is not a dead letter: it succeeded", status.Convert(err).Message())
	require.Zero(t, h.audit.Count(audit.TypeDeadLetterRequeued), "refusals requeue nothing")

	cured.Store(true)
	res, err := h.client.RequeueDeadLetter(admin, &ingestv1.RequeueDeadLetterRequest{JobId: dead.GetJobId()})
	require.NoError(t, err)
	require.True(t, proto.Equal(&ingestv1.RequeueDeadLetterResponse{JobId: dead.GetJobId(), DocumentId: "poison", Status: ingest.StatusQueued,
		StatusUrl: "/v1/documents/poison"}, res), "%v", res)
	require.Equal(t, 1, h.audit.Count(audit.TypeDeadLetterRequeued))
	_, err = h.client.RequeueDeadLetter(admin, &ingestv1.RequeueDeadLetterRequest{JobId: dead.GetJobId()})
	require.Equal(t, ingest.CodeNotADeadLetter, code(err), "requeued already")
	doc := h.waitStatus(t, "poison", ingest.StatusSucceeded)
	require.EqualValues(t, 1, doc.GetAttempts(), "attempts count from zero again")
	require.Equal(t, dead.GetJobId(), doc.GetJobId())
	stats, err = h.client.GetIngestionStats(admin, &ingestv1.GetIngestionStatsRequest{})
	require.NoError(t, err)
	require.Zero(t, stats.GetDeadLetters())
	require.Empty(t, stats.GetDeadLetterJobs())
}
