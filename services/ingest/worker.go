package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/extract"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
)

// WorkerOptions tune a Worker; zero values take the defaults.
type WorkerOptions struct {
	// Consumer names this worker in the consumer group (default: host name + random suffix).
	Consumer string
	// Concurrency is how many batches are processed at once (default 2).
	Concurrency int
	// BatchSize is the most jobs read, claimed and indexed together (default 32).
	BatchSize int
	// ClaimTimeout is how long a job may sit unacknowledged before another worker takes it
	// over (default 60s); a worker touches the jobs it is working on well within it. A job
	// whose attempt failed for a transient reason is retried once idle that long.
	ClaimTimeout time.Duration
	// MaxAttempts bounds the attempts of a job that keeps failing for a transient reason
	// (default 5); the last one makes it a dead letter.
	MaxAttempts int
	// StallTimeout is how long a stage may report no progress before its attempt fails with
	// INGEST_STALLED (default 2m): the watchdog judges progress, never the total time.
	StallTimeout time.Duration
	// RequeueAfter is how long an unfinished document no worker is holding may go without
	// an update before the sweep puts its job on the queue again (default 5m).
	RequeueAfter time.Duration
	// RequeueGrace is how long a document whose job could not be enqueued (Redis was down)
	// waits before the sweep enqueues it (default 10s).
	RequeueGrace time.Duration
	// Block is the longest a read waits for a job (default 500ms). It also bounds how long
	// stopping takes: a blocked read does not see its context end.
	Block time.Duration
	// PDF bounds the extraction of each PDF (defaults: 2000 pages, 30s, 10 MiB of text).
	PDF extract.PDFLimits
}

func (o *WorkerOptions) defaults() {
	if o.Consumer == "" {
		host, _ := os.Hostname()
		suffix := make([]byte, 3)
		_, _ = rand.Read(suffix)
		o.Consumer = host + "-" + hex.EncodeToString(suffix)
	}
	setDefault(&o.Concurrency, 2)
	setDefault(&o.BatchSize, 32)
	setDefault(&o.ClaimTimeout, time.Minute)
	setDefault(&o.MaxAttempts, 5)
	setDefault(&o.StallTimeout, 2*time.Minute)
	setDefault(&o.RequeueAfter, 5*time.Minute)
	setDefault(&o.RequeueGrace, 10*time.Second)
	setDefault(&o.Block, 500*time.Millisecond)
	setDefault(&o.PDF.MaxPages, 2000)
	setDefault(&o.PDF.Timeout, 30*time.Second)
	setDefault(&o.PDF.MaxText, 10<<20)
}

func setDefault[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Worker consumes ingestion jobs: it claims the documents, chunks them, hands the chunks
// to the retrieval service (several documents of a corpus per call) and records the
// outcome, and only then acknowledges the jobs. A job whose worker died is reclaimed and
// redone; redoing one replaces the document's chunks, so it never duplicates them. A
// watchdog fails an attempt whose stage stops making progress (watchdog.go).
type Worker struct {
	store     *Store
	queue     *Queue
	retrieval retrievalv1.RetrievalServiceClient
	pdf       *extract.PDFExtractor
	log       *slog.Logger
	o         WorkerOptions
	mu        sync.Mutex
	// inflight are the jobs being processed, by stream id: touched so they are not reclaimed.
	inflight map[string]Job
	// nextReclaim is when the consumers look for idle jobs again.
	nextReclaim time.Time
}

// NewWorker returns a worker; Run starts it.
func NewWorker(store *Store, queue *Queue, retrieval retrievalv1.RetrievalServiceClient, log *slog.Logger, o WorkerOptions) *Worker {
	o.defaults()
	pdf := extract.NewPDFExtractor(o.PDF)
	if err := pdf.Available(); err != nil {
		log.Warn("PDF documents will fail with "+extract.CodePDFUnavailable, "error", err)
	}
	return &Worker{store: store, queue: queue, retrieval: retrieval, pdf: pdf, log: log.With("consumer", o.Consumer), o: o, inflight: map[string]Job{}}
}

// Run consumes jobs until ctx ends; batches already started are finished first.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.ensureQueue(ctx); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	for range w.o.Concurrency {
		g.Go(func() error { w.consume(ctx); return nil })
	}
	g.Go(func() error { w.every(ctx, w.o.ClaimTimeout/3, w.housekeep); return nil })
	return g.Wait()
}

// ensureQueue creates the consumer group, waiting for Redis if it is not up yet.
func (w *Worker) ensureQueue(ctx context.Context) error {
	for {
		err := w.queue.Ensure(ctx)
		if err == nil || ctx.Err() != nil {
			return err
		}
		w.log.WarnContext(ctx, "ingest queue unavailable; retrying", "error", err)
		if !sleep(ctx, time.Second) {
			return nil
		}
	}
}

// consume reads and processes batches until ctx ends.
func (w *Worker) consume(ctx context.Context) {
	for ctx.Err() == nil {
		jobs, err := w.next(ctx)
		if err != nil {
			if ctx.Err() == nil {
				w.log.WarnContext(ctx, "reading ingestion jobs failed; retrying", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		w.process(ctx, jobs)
	}
}

// next returns the jobs to process: jobs left idle for the claim timeout (their worker
// stopped, or their attempt failed and they wait to be retried), looked for at most every
// third of it by one consumer, else new jobs. Jobs this worker is still processing (their
// touches came late) are left to it.
func (w *Worker) next(ctx context.Context) ([]Job, error) {
	if w.reclaimDue() {
		jobs, err := w.queue.Reclaim(ctx, w.o.Consumer, w.o.ClaimTimeout, w.o.BatchSize)
		if err != nil {
			w.log.WarnContext(ctx, "reclaiming jobs failed", "error", err)
		}
		if jobs = w.notInflight(jobs); len(jobs) > 0 {
			w.log.InfoContext(ctx, "reclaimed idle jobs", "jobs", len(jobs))
			return jobs, nil
		}
	}
	return w.queue.Read(ctx, w.o.Consumer, w.o.BatchSize, w.o.Block)
}

func (w *Worker) reclaimDue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	if now.Before(w.nextReclaim) {
		return false
	}
	w.nextReclaim = now.Add(w.o.ClaimTimeout / 3)
	return true
}

// housekeep beats the heart, keeps in-flight jobs from being reclaimed (and their
// documents from being requeued) and requeues documents whose job was lost. It never
// processes jobs itself: a long batch would hold up the touches.
func (w *Worker) housekeep(ctx context.Context) {
	if err := w.queue.Heartbeat(ctx, w.o.Consumer, w.o.ClaimTimeout); err != nil {
		w.log.WarnContext(ctx, "worker heartbeat failed", "error", err)
	}
	if jobs := w.inflightJobs(); len(jobs) > 0 {
		ids := make([]string, len(jobs))
		for i, j := range jobs {
			ids[i] = j.ID
		}
		if err := w.queue.Touch(ctx, w.o.Consumer, ids...); err != nil {
			w.log.WarnContext(ctx, "touching in-flight jobs failed", "error", err)
		}
		if err := w.store.KeepAlive(ctx, jobs); err != nil {
			w.log.WarnContext(ctx, "touching in-flight documents failed", "error", err)
		}
	}
	w.requeueStale(ctx)
}

// requeueStale puts the jobs of documents the queue does not hold back on it.
func (w *Worker) requeueStale(ctx context.Context) {
	jobs, err := w.store.Stale(ctx, w.o.RequeueGrace, w.o.RequeueAfter, 500)
	if err != nil {
		w.log.WarnContext(ctx, "requeue sweep failed", "error", err)
		return
	}
	for _, j := range jobs {
		if err := enqueue(ctx, w.queue, w.store, j); err != nil {
			w.log.WarnContext(ctx, "requeue failed; the next sweep retries", "document_id", j.DocumentID, "error", err)
		}
	}
	if len(jobs) > 0 {
		w.log.InfoContext(ctx, "requeued documents without a job on the queue", "documents", len(jobs))
	}
}

// process runs one batch to the end even when ctx ends meanwhile (shutdown): a half-done
// batch would only be redone by another worker after the claim timeout. No deadline bounds
// the batch, however large its documents: each of its steps must make progress within the
// stall timeout instead (a PDF's extraction has its own bound, INGEST_EXTRACT_TIMEOUT).
func (w *Worker) process(ctx context.Context, jobs []Job) {
	if len(jobs) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx)
	w.track(jobs, true)
	defer w.track(jobs, false)

	step, cancel := context.WithTimeout(ctx, w.o.StallTimeout) // one statement: it ends or it stalled
	docs, err := w.store.Claim(step, jobs)
	cancel()
	if err != nil {
		w.log.WarnContext(ctx, "claiming documents failed; the jobs will be redelivered", "jobs", len(jobs), "error", err)
		return
	}
	live := make(map[string]bool, len(docs))
	for _, d := range docs {
		live[d.job.ID] = true
	}
	var done []string
	for _, j := range jobs {
		if !live[j.ID] { // document deleted, changed or finished since: nothing to do
			done = append(done, j.ID)
		}
	}
	outs := w.index(ctx, docs)
	if len(outs) > 0 {
		step, cancel := context.WithTimeout(ctx, w.o.StallTimeout)
		err := w.store.Finish(step, outs)
		cancel()
		if err != nil {
			w.log.WarnContext(ctx, "recording outcomes failed; the jobs will be redone", "error", err)
			outs = nil
		}
	}
	for _, o := range outs {
		if o.status != StatusQueued { // a retry stays pending, and is reclaimed once idle
			done = append(done, o.job)
		}
	}
	for _, id := range done {
		if err := w.queue.Ack(ctx, id); err != nil {
			w.log.WarnContext(ctx, "acknowledging a job failed; it will be redelivered and dropped", "job", id, "error", err)
		}
	}
}

// Limits of one UpsertDocuments call made by the worker.
const (
	callMaxDocuments = 256
	callMaxChunks    = 4000
)

// index chunks the documents and stores the chunks, one call per corpus and batch. It
// returns an outcome for every document: finished, or queued again to be retried.
func (w *Worker) index(ctx context.Context, docs []claimed) []outcome {
	type group struct{ tenant, corpus string }
	groups := map[group][]claimed{}
	var order []group
	for _, d := range docs {
		g := group{d.TenantID, d.CorpusID}
		if _, ok := groups[g]; !ok {
			order = append(order, g)
		}
		groups[g] = append(groups[g], d)
	}
	var outs []outcome
	for _, g := range order {
		var batch []claimed
		var input []*retrievalv1.DocumentChunks
		chunks := 0
		flush := func() {
			if len(batch) > 0 {
				outs = append(outs, w.upsert(ctx, g.tenant, g.corpus, batch, input)...)
			}
			batch, input, chunks = nil, nil, 0
		}
		for _, d := range groups[g] {
			dc, err := w.documentChunks(ctx, d)
			if err != nil {
				outs = append(outs, w.failed(ctx, d, err))
				continue
			}
			if d.Attempts > 1 { // retried: alone, so that a document that failed its batch fails alone
				outs = append(outs, w.upsert(ctx, g.tenant, g.corpus, []claimed{d}, []*retrievalv1.DocumentChunks{dc})...)
				continue
			}
			if len(batch) == callMaxDocuments || (len(batch) > 0 && chunks+len(dc.Chunks) > callMaxChunks) {
				flush()
			}
			batch, input, chunks = append(batch, d), append(input, dc), chunks+len(dc.Chunks)
		}
		flush()
	}
	return outs
}

// upsert stores one batch; when the batch is refused for a reason of its own (not a
// transient failure), each document is tried alone so that one bad document fails alone.
func (w *Worker) upsert(ctx context.Context, tenant, corpus string, batch []claimed, input []*retrievalv1.DocumentChunks) []outcome {
	res, err := w.write(ctx, &retrievalv1.UpsertDocumentsWithProgressRequest{TenantId: tenant, CorpusId: corpus, Documents: input})
	if err == nil {
		outs := make([]outcome, len(batch))
		for i, d := range batch {
			outs[i] = d.outcome(StatusSucceeded, int(res.GetChunkCounts()[i]), "")
		}
		if fenced := res.GetFenced(); len(fenced) > 0 {
			// Overtaken or deleted while this worker indexed them: retrieval kept the newer
			// state, and Finish records nothing for a version that is no longer current.
			w.log.InfoContext(ctx, "documents changed or deleted while indexing; their chunks were not written", "corpus_id", corpus, "document_ids", fenced)
		}
		return outs
	}
	if permanent(err) && len(batch) > 1 {
		var outs []outcome
		for i := range batch {
			outs = append(outs, w.upsert(ctx, tenant, corpus, batch[i:i+1], input[i:i+1])...)
		}
		return outs
	}
	outs := make([]outcome, len(batch))
	for i, d := range batch {
		outs[i] = w.failed(ctx, d, err)
	}
	return outs
}

// failed is the outcome of a document whose attempt failed: failed for good when trying
// again cannot help; a dead letter when its attempts are used up (a stall, like any
// transient failure); else queued again, with the attempt's reason, for its job to be
// retried.
func (w *Worker) failed(ctx context.Context, d claimed, err error) outcome {
	why := reason(ctx, err)
	switch {
	case permanent(err):
		return d.outcome(StatusFailed, 0, why)
	case d.Attempts >= w.o.MaxAttempts:
		w.log.WarnContext(ctx, "ingestion job out of attempts: a dead letter", "document_id", d.DocumentID, "job_id", d.JobID, "attempts", d.Attempts, "error", why)
		o := d.outcome(StatusFailed, 0, fmt.Sprintf("gave up after %d attempts: %s", d.Attempts, why))
		o.deadLetter = true
		return o
	}
	w.log.WarnContext(ctx, "ingestion attempt failed; the job will be retried", "document_id", d.DocumentID, "attempt", d.Attempts, "error", why)
	return d.outcome(StatusQueued, 0, why)
}

// documentChunks chunks a document for the retrieval service; a PDF's text is extracted
// first, which fails (the PDF's fault: an *apierr.Error) or is cut short (ctx).
func (w *Worker) documentChunks(ctx context.Context, d claimed) (*retrievalv1.DocumentChunks, error) {
	md := map[string]any{"content_type": d.ContentType}
	if d.Filename != "" {
		md["filename"] = d.Filename
	}
	o := ChunkOptions{Size: d.ChunkSize, Overlap: d.ChunkOverlap}
	var chunks []SectionedChunk
	if d.ContentType == extract.ContentTypePDF {
		text, err := w.pdf.Text(ctx, d.file)
		if err != nil {
			return nil, fmt.Errorf("extract the text of PDF %s: %w", d.DocumentID, err)
		}
		chunks = ChunkPages(text, o)
	} else {
		chunks = chunksOf(d.ContentType, d.text, o)
	}
	out := &retrievalv1.DocumentChunks{DocumentId: d.DocumentID, Version: d.Version, Chunks: make([]*retrievalv1.ChunkInput, len(chunks))}
	for i, c := range chunks {
		setOrDelete(md, "section", c.Section, c.Section != "")
		setOrDelete(md, "page", c.Page, c.Page > 0)
		meta, _ := structpb.NewStruct(md)
		out.Chunks[i] = &retrievalv1.ChunkInput{Text: c.Text, Metadata: meta}
	}
	return out, nil
}

func setOrDelete(md map[string]any, key string, v any, set bool) {
	if set {
		md[key] = v
	} else {
		delete(md, key)
	}
}

// chunksOf chunks a document's stored content by its type: HTML by its visible text,
// and markdown and HTML with the section of each chunk.
func chunksOf(contentType, content string, o ChunkOptions) []SectionedChunk {
	switch contentType {
	case ContentTypeHTML:
		return ChunkSections(extract.HTML(content), o)
	case ContentTypeMarkdown, extract.ContentTypeDOCX: // a DOCX is stored as the markdown its upload extracted
		return ChunkSections(content, o)
	}
	texts := Chunk(content, o)
	out := make([]SectionedChunk, len(texts))
	for i, t := range texts {
		out[i].Text = t
	}
	return out
}

// permanent reports failures that redoing the job cannot fix.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.PermissionDenied, codes.OutOfRange, codes.AlreadyExists:
		return true
	}
	return false
}

// reason renders a failure for failure_reason: "CODE: message". Errors come from the
// retrieval service, whose interceptor gives each a NexusRAG code; what carries none
// (a transport failure) is normalized the way every service normalizes its errors.
func reason(ctx context.Context, err error) string {
	e, _ := apierr.From(grpcx.Normalize(ctx, err))
	return e.Code + ": " + e.Message
}

func (w *Worker) track(jobs []Job, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, j := range jobs {
		if on {
			w.inflight[j.ID] = j
		} else {
			delete(w.inflight, j.ID)
		}
	}
}

func (w *Worker) notInflight(jobs []Job) []Job {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.DeleteFunc(jobs, func(j Job) bool { _, ok := w.inflight[j.ID]; return ok })
}

func (w *Worker) inflightJobs() []Job {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Collect(maps.Values(w.inflight))
}

// every runs f at once and then every interval until ctx ends.
func (w *Worker) every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
