package audit

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redact"
	"github.com/nexusrag/nexusrag/pkg/requestid"
)

// Event is what a service records. Empty fields are filled from the context where the
// context knows them (request id, principal).
type Event struct {
	Type         string
	Outcome      string
	TenantID     string
	ActorType    string
	ActorID      string
	ResourceType string
	ResourceID   string
	RequestID    string
	ClientIP     string
	// Metadata is redacted before it leaves the process; never put content in it anyway.
	Metadata map[string]any
}

// Options tune a Recorder; zero values take the defaults.
type Options struct {
	BufferSize    int           // events held while governance is slow (10000)
	BatchSize     int           // events per RecordEvents call (256)
	FlushInterval time.Duration // longest an event waits for a batch to fill (250ms)
	CallTimeout   time.Duration // per RecordEvents call (5s)
	Registerer    prometheus.Registerer
}

// Recorder sends events to the governance service in batches from one background
// goroutine. Record never blocks and never does I/O, so auditing adds nothing to a
// request's latency; Close flushes what is buffered.
type Recorder struct {
	client governancev1.AuditServiceClient
	log    *slog.Logger
	opts   Options
	queue  chan *governancev1.AuditEvent

	mu       sync.RWMutex // guards closed against Record racing Close
	closed   bool
	flushCtx context.Context // the Close deadline, once closing
	stop     chan struct{}
	done     chan struct{}
	inFlight atomic.Int64
	started  sync.Once
	lastWarn atomic.Int64 // unix nanoseconds of the last "buffer full" warning

	recorded, dropped, batchFailures prometheus.Counter
}

// NewRecorder returns a recorder; call Start, and Close when the process stops.
func NewRecorder(client governancev1.AuditServiceClient, log *slog.Logger, o Options) *Recorder {
	if o.BufferSize <= 0 {
		o.BufferSize = 10_000
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = 250 * time.Millisecond
	}
	if o.CallTimeout <= 0 {
		o.CallTimeout = 5 * time.Second
	}
	r := &Recorder{
		client: client, log: log, opts: o,
		queue: make(chan *governancev1.AuditEvent, o.BufferSize),
		stop:  make(chan struct{}), done: make(chan struct{}),
		recorded:      prometheus.NewCounter(prometheus.CounterOpts{Name: "nexusrag_audit_events_recorded_total", Help: "Audit events delivered to the governance service."}),
		dropped:       prometheus.NewCounter(prometheus.CounterOpts{Name: "nexusrag_audit_events_dropped_total", Help: "Audit events dropped because the buffer was full or the recorder closed."}),
		batchFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "nexusrag_audit_batch_failures_total", Help: "RecordEvents calls that failed and were retried."}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(r.recorded, r.dropped, r.batchFailures)
	}
	return r
}

// Start launches the delivery goroutine (once).
func (r *Recorder) Start() {
	r.started.Do(func() { go r.loop() })
}

// Record enqueues an event. When the buffer is full the event is dropped, counted and
// logged (at most every 10 s).
func (r *Recorder) Record(ctx context.Context, e Event) {
	ev := r.toProto(ctx, e)
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.closed {
		r.dropped.Inc()
		return
	}
	select {
	case r.queue <- ev:
	default:
		r.dropped.Inc()
		r.warnDropped(ctx)
	}
}

func (r *Recorder) warnDropped(ctx context.Context) {
	now := time.Now().UnixNano()
	last := r.lastWarn.Load()
	if now-last < int64(10*time.Second) || !r.lastWarn.CompareAndSwap(last, now) {
		return
	}
	r.log.WarnContext(ctx, "audit buffer full: dropping events", "buffer_size", r.opts.BufferSize)
}

func (r *Recorder) toProto(ctx context.Context, e Event) *governancev1.AuditEvent {
	if e.RequestID == "" {
		e.RequestID = requestid.From(ctx)
	}
	if p, ok := principal.From(ctx); ok {
		if e.TenantID == "" {
			e.TenantID = p.TenantID
		}
		if e.ActorType == "" && p.KeyID != "" {
			e.ActorType, e.ActorID = ActorAPIKey, p.KeyID
		}
	}
	if e.ActorType == "" {
		e.ActorType = ActorSystem
	}
	md, err := structpb.NewStruct(jsonSafe(redact.Map(e.Metadata)))
	if err != nil {
		md = &structpb.Struct{Fields: map[string]*structpb.Value{"metadata_error": structpb.NewStringValue(err.Error())}}
	}
	return &governancev1.AuditEvent{
		Id: uuid.Must(uuid.NewV7()).String(), OccurredAt: timestamppb.Now(),
		TenantId: e.TenantID, ActorType: e.ActorType, ActorId: e.ActorID, EventType: e.Type, Outcome: e.Outcome,
		ResourceType: e.ResourceType, ResourceId: e.ResourceID, RequestId: e.RequestID, ClientIp: e.ClientIP, Metadata: md,
	}
}

// jsonSafe converts the Go values metadata commonly holds into what structpb accepts.
func jsonSafe(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		switch t := v.(type) {
		case map[string]any:
			out[k] = jsonSafe(t)
		case []any:
			out[k] = jsonSafeList(t)
		case []string:
			l := make([]any, len(t))
			for i, v := range t {
				l[i] = v
			}
			out[k] = l
		case int, int32, int64, uint, uint32, uint64, float32, float64, string, bool, nil:
			out[k] = t
		case fmt.Stringer:
			out[k] = t.String()
		case time.Time:
			out[k] = t.UTC().Format(time.RFC3339Nano)
		default:
			out[k] = fmt.Sprint(t)
		}
	}
	return out
}

func jsonSafeList(l []any) []any {
	out := make([]any, len(l))
	for i, v := range l {
		out[i] = jsonSafe(map[string]any{"v": v})["v"]
	}
	return out
}

// Close stops accepting events and delivers everything buffered, retrying until ctx
// ends; it reports how many events could not be delivered.
func (r *Recorder) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	r.flushCtx = ctx
	r.mu.Unlock()
	r.Start() // a recorder never started still flushes what it holds
	close(r.stop)
	select {
	case <-r.done:
	case <-ctx.Done():
	}
	if left := len(r.queue) + int(r.inFlight.Load()); left > 0 {
		return fmt.Errorf("%d audit events not delivered before the shutdown deadline", left)
	}
	return nil
}

// loop gathers batches and delivers them; after Close it drains the queue.
func (r *Recorder) loop() {
	defer close(r.done)
	batch := make([]*governancev1.AuditEvent, 0, r.opts.BatchSize)
	failures := 0
	for {
		if len(batch) == 0 {
			select {
			case ev := <-r.queue:
				batch = r.collect(append(batch, ev))
			case <-r.stop:
				r.drain(batch)
				return
			}
		}
		if r.send(r.flushCtxOr(context.Background()), batch) {
			batch, failures = batch[:0], 0
			continue
		}
		failures++
		select {
		case <-time.After(backoff(failures)):
		case <-r.stop:
			r.drain(batch)
			return
		}
	}
}

// collect waits up to FlushInterval for the batch to fill.
func (r *Recorder) collect(batch []*governancev1.AuditEvent) []*governancev1.AuditEvent {
	t := time.NewTimer(r.opts.FlushInterval)
	defer t.Stop()
	for len(batch) < r.opts.BatchSize {
		select {
		case ev := <-r.queue:
			batch = append(batch, ev)
		case <-t.C:
			return batch
		case <-r.stop:
			return batch
		}
	}
	return batch
}

// drain delivers the held batch and everything queued, retrying until the Close
// context ends.
func (r *Recorder) drain(batch []*governancev1.AuditEvent) {
	ctx := r.flushCtxOr(context.Background())
	failures := 0
	for {
		batch = r.fill(batch)
		if len(batch) == 0 {
			return
		}
		if r.send(ctx, batch) {
			batch, failures = batch[:0], 0
			continue
		}
		failures++
		select {
		case <-time.After(backoff(failures)):
		case <-ctx.Done():
			return
		}
	}
}

func (r *Recorder) fill(batch []*governancev1.AuditEvent) []*governancev1.AuditEvent {
	for len(batch) < r.opts.BatchSize {
		select {
		case ev := <-r.queue:
			batch = append(batch, ev)
		default:
			return batch
		}
	}
	return batch
}

// send makes one RecordEvents call. Event ids make a retried batch idempotent.
func (r *Recorder) send(ctx context.Context, batch []*governancev1.AuditEvent) bool {
	r.inFlight.Store(int64(len(batch)))
	cctx, cancel := context.WithTimeout(ctx, r.opts.CallTimeout)
	defer cancel()
	_, err := r.client.RecordEvents(cctx, &governancev1.RecordEventsRequest{Events: batch})
	if err != nil {
		r.batchFailures.Inc()
		r.log.Warn("audit batch not delivered; will retry", "events", len(batch), "error", err)
		return false
	}
	r.inFlight.Store(0)
	r.recorded.Add(float64(len(batch)))
	return true
}

func (r *Recorder) flushCtxOr(def context.Context) context.Context {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.flushCtx != nil {
		return r.flushCtx
	}
	return def
}

// backoff is capped exponential: 100ms, 200ms, ... 5s.
func backoff(failures int) time.Duration {
	d := 100 * time.Millisecond << min(failures-1, 6)
	return min(d, 5*time.Second)
}
