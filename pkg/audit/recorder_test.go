package audit_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/requestid"
)

// sink is an AuditServiceClient that stores by id (as governance does) and can be told
// to fail or block. The governance package's tests run the recorder against the real server.
type sink struct {
	governancev1.AuditServiceClient
	mu       sync.Mutex
	events   map[string]*governancev1.AuditEvent
	calls    int
	failNext int
	gate     chan struct{}
}

func (s *sink) RecordEvents(ctx context.Context, in *governancev1.RecordEventsRequest, _ ...grpc.CallOption) (*governancev1.RecordEventsResponse, error) {
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.failNext > 0 {
		s.failNext--
		// Simulate a timeout after governance stored the batch: the retry must not duplicate.
		for _, e := range in.GetEvents() {
			s.events[e.GetId()] = e
		}
		return nil, errors.New("deadline exceeded")
	}
	for _, e := range in.GetEvents() {
		s.events[e.GetId()] = e
	}
	return &governancev1.RecordEventsResponse{Recorded: int32(len(in.GetEvents()))}, nil
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.events)
}

func newSink() *sink { return &sink{events: map[string]*governancev1.AuditEvent{}} }

func TestRecorderFillsFromContextAndRedacts(t *testing.T) {
	s := newSink()
	r := audit.NewRecorder(s, logging.Discard(), audit.Options{})
	r.Start()
	ctx := requestid.With(context.Background(), "req-1")
	ctx = principal.With(ctx, principal.Principal{TenantID: "t1", KeyID: "k1", Role: apiv1.Role_ROLE_ADMIN})
	r.Record(ctx, audit.Event{Type: audit.TypeRunInvoked, Outcome: audit.OutcomeSuccess,
		Metadata: map[string]any{"message_text": "hello", "n": 3, "nested": map[string]any{"api_key": "nrk_x"}}})
	require.NoError(t, r.Close(context.Background()))
	require.Equal(t, 1, s.count())
	for _, e := range s.events {
		require.Equal(t, "req-1", e.GetRequestId())
		require.Equal(t, "t1", e.GetTenantId())
		require.Equal(t, audit.ActorAPIKey, e.GetActorType())
		require.Equal(t, "k1", e.GetActorId())
		require.NotEmpty(t, e.GetId())
		md := e.GetMetadata().AsMap()
		require.Equal(t, "[REDACTED]", md["message_text"])
		require.Equal(t, "[REDACTED]", md["nested"].(map[string]any)["api_key"])
		require.EqualValues(t, 3, md["n"])
	}
}

func TestRecorderRetriesWithoutLossOrDuplicates(t *testing.T) {
	s := newSink()
	s.failNext = 3
	r := audit.NewRecorder(s, logging.Discard(), audit.Options{BatchSize: 7, FlushInterval: 5 * time.Millisecond})
	r.Start()
	const n = 100
	for range n {
		r.Record(context.Background(), audit.Event{Type: audit.TypeAuthAccessSuccess, Outcome: audit.OutcomeSuccess})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	require.NoError(t, r.Close(ctx))
	require.Equal(t, n, s.count(), "every event once")
	require.Greater(t, s.calls, n/7)
}

func TestRecordNeverBlocksWhenFull(t *testing.T) {
	s := newSink()
	s.gate = make(chan struct{}) // governance hangs
	reg := prometheus.NewRegistry()
	r := audit.NewRecorder(s, logging.Discard(), audit.Options{BufferSize: 10, BatchSize: 5, FlushInterval: time.Millisecond, Registerer: reg})
	r.Start()
	done := make(chan struct{})
	go func() {
		for range 1000 {
			r.Record(context.Background(), audit.Event{Type: audit.TypeAuthAccessFailure, Outcome: audit.OutcomeFailure})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked")
	}
	dropped := testutil.ToFloat64(counter(t, reg, "nexusrag_audit_events_dropped_total"))
	require.GreaterOrEqual(t, dropped, float64(1000-10-5))

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // governance never answers: Close reports what it could not deliver
	err := r.Close(ctx)
	require.ErrorContains(t, err, "not delivered")
	close(s.gate)
}

func counter(t *testing.T, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			c := prometheus.NewCounter(prometheus.CounterOpts{Name: name})
			c.Add(mf.GetMetric()[0].GetCounter().GetValue())
			return c
		}
	}
	t.Fatalf("metric %s not registered", name)
	return nil
}
