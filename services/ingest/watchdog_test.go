package ingest_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
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

// Timings of the watchdog tests: a stall is noticed after stallTimeout (also the bound of
// each statement, and of a write after its last progress: ample on a loaded machine), and
// a failed attempt is retried once its job has been idle for claimTimeout. The tests run
// in parallel: they mostly wait.
const (
	stallTimeout = 250 * time.Millisecond
	claimTimeout = 150 * time.Millisecond
)

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
	h.worker(t, ingest.WorkerOptions{StallTimeout: stallTimeout, ClaimTimeout: claimTimeout, MaxAttempts: 3}, h.retrievalWith(t, stalling))
	_, err := h.client.CreateDocument(editor, &ingestv1.CreateDocumentRequest{CorpusId: "c1", Text: threeChunks, DocumentId: "d1", ChunkSizeChars: 100, ChunkOverlapChars: 0})
	require.NoError(t, err)

	doc := h.waitStatus(t, "d1", ingest.StatusSucceeded)
	// From the last progress the worker saw, which may precede the stall's start by a hair.
	require.GreaterOrEqual(t, <-waited, stallTimeout*9/10, "the watchdog waited the stall timeout")
	retry := <-duringRetry
	require.Equal(t, ingest.StatusProcessing, retry.GetStatus())
	require.EqualValues(t, 2, retry.GetAttempts())
	require.Equal(t, "INGEST_STALLED: no progress for 250ms after 1 of 3 chunks were embedded", retry.GetFailureReason())
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
	text := strings.Repeat(threeChunks+"\n\n", 4)
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
	h.worker(t, ingest.WorkerOptions{StallTimeout: stallTimeout, ClaimTimeout: claimTimeout, RequeueAfter: 2 * claimTimeout, MaxAttempts: 3},
		h.retrievalWith(t, slow))
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
