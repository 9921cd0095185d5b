package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// CodeIngestStalled fails an attempt whose stage reported no progress for the stall
// timeout (INGEST_STALL_TIMEOUT); the job is retried.
const CodeIngestStalled = "INGEST_STALLED"

// errStalled is the cause of a call the watchdog cancelled.
var errStalled = errors.New("no progress within the stall timeout")

// write stores a batch through retrieval's UpsertDocumentsWithProgress under a watchdog:
// every event of the call (a batch of chunks embedded, then the result once they are
// written) is progress, and a call that reports none for the stall timeout is cancelled
// and fails with INGEST_STALLED. A call that keeps reporting is never cut short, however
// long its documents take.
func (w *Worker) write(ctx context.Context, req *retrievalv1.UpsertDocumentsWithProgressRequest) (*retrievalv1.UpsertDocumentsResponse, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	dog := time.AfterFunc(w.o.StallTimeout, func() { cancel(errStalled) })
	defer dog.Stop()
	var progress *retrievalv1.UpsertProgress
	stream, err := w.retrieval.UpsertDocumentsWithProgress(ctx, req)
	for err == nil {
		var ev *retrievalv1.UpsertDocumentsWithProgressResponse
		if ev, err = stream.Recv(); err != nil {
			break
		}
		dog.Reset(w.o.StallTimeout)
		if res := ev.GetResult(); res != nil {
			return res, nil
		}
		progress = ev.GetProgress()
	}
	switch {
	case errors.Is(context.Cause(ctx), errStalled):
		return nil, apierr.New(codes.DeadlineExceeded, CodeIngestStalled,
			fmt.Sprintf("no progress for %s %s", w.o.StallTimeout, stage(progress)))
	case errors.Is(err, io.EOF):
		return nil, apierr.New(codes.Unavailable, apierr.CodeUnavailable, "the retrieval service ended the call without its result")
	}
	return nil, err
}

// stage says where a stalled call was, from its last progress event.
func stage(p *retrievalv1.UpsertProgress) string {
	switch {
	case p == nil:
		return "before any chunk was embedded"
	case p.GetChunksEmbedded() < p.GetChunksTotal():
		return fmt.Sprintf("after %d of %d chunks were embedded", p.GetChunksEmbedded(), p.GetChunksTotal())
	}
	if p.GetChunksTotal() == 1 {
		return "while its embedded chunk was written"
	}
	return fmt.Sprintf("while its %d embedded chunks were written", p.GetChunksTotal())
}
