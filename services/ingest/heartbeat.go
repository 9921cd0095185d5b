package ingest

import (
	"context"
	"log/slog"
	"time"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// WithWorker sets the heartbeat age past which the worker counts as missing.
func (s *Server) WithWorker(staleAfter time.Duration) *Server {
	s.staleAfter = staleAfter
	return s
}

// GetIngestionStats describes the caller's tenant's ingestion over the last hours.
func (s *Server) GetIngestionStats(ctx context.Context, req *ingestv1.GetIngestionStatsRequest) (*ingestv1.GetIngestionStatsResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	hours := req.GetHours()
	if hours == 0 {
		hours = 24
	}
	if hours < 1 || hours > 168 {
		return nil, apierr.InvalidArgument("hours", "hours must be 1 to 168")
	}
	window := time.Duration(hours) * time.Hour
	st, err := s.store.IngestionStats(ctx, p.TenantID, time.Now().Add(-window))
	if err != nil {
		return nil, err
	}
	dead, err := s.store.DeadLetters(ctx, p.TenantID, p.CorpusIDs, maxDeadLetters)
	if err != nil {
		return nil, err
	}
	minutes := window.Minutes()
	out := &ingestv1.GetIngestionStatsResponse{Hours: hours, DocumentsByStatus: st.byStatus, Succeeded: st.succeeded, Failed: st.failed,
		DocumentsPerMinute: float64(st.succeeded) / minutes, ChunksPerMinute: float64(st.chunks) / minutes,
		QueuedToSucceededP50Ms: st.p50MS, QueuedToSucceededP95Ms: st.p95MS, OldestQueuedAgeS: st.oldestQueuedAgeS, DeadLetters: st.deadLetters}
	for _, f := range st.failures {
		out.Failures = append(out.Failures, &ingestv1.FailureCount{Reason: f.reason, Count: f.count})
	}
	for _, l := range dead {
		out.DeadLetterJobs = append(out.DeadLetterJobs, deadLetterProto(l))
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeOpsViewed, Outcome: audit.OutcomeSuccess, ResourceType: "ops", ResourceID: "ingestion",
		Metadata: map[string]any{"hours": hours}})
	return out, nil
}

// GetWorkerStatus says when a worker last reported and how many jobs are queued.
func (s *Server) GetWorkerStatus(ctx context.Context, _ *ingestv1.GetWorkerStatusRequest) (*ingestv1.GetWorkerStatusResponse, error) {
	out := &ingestv1.GetWorkerStatusResponse{StaleAfterS: s.staleAfter.Seconds()}
	last, err := s.queue.LastBeat(ctx)
	if err != nil {
		out.RedisError = err.Error()
		return out, nil
	}
	if !last.IsZero() {
		age := max(0, time.Since(last).Seconds())
		out.HeartbeatAgeS = &age
	}
	depth, err := s.queue.Depth(ctx)
	if err != nil {
		out.RedisError = err.Error()
		return out, nil
	}
	out.QueueDepth = &depth
	return out, nil
}

// HeartbeatWatch audits, once, that the workers' heartbeat went missing (older than
// StaleAfter), as system.worker.heartbeat.missed, however many processes watch; a
// heartbeat that comes back re-arms it.
type HeartbeatWatch struct {
	Queue      *Queue
	StaleAfter time.Duration
	Now        func() time.Time
	Audit      Recorder
	Log        *slog.Logger
}

// Run checks every interval until ctx ends.
func (h HeartbeatWatch) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			h.Check(ctx)
		}
	}
}

// Check looks once; it reports whether it audited a missed heartbeat.
func (h HeartbeatWatch) Check(ctx context.Context) bool {
	last, err := h.Queue.LastBeat(ctx)
	if err != nil || last.IsZero() {
		return false // Redis cannot tell, or no worker has reported yet
	}
	age := h.Now().Sub(last)
	if age <= h.StaleAfter {
		if err := h.Queue.clearMissed(ctx); err != nil && ctx.Err() == nil {
			h.Log.WarnContext(ctx, "could not re-arm the worker heartbeat watch", "error", err)
		}
		return false
	}
	first, err := h.Queue.markMissed(ctx, last)
	if err != nil || !first {
		return false
	}
	h.Log.WarnContext(ctx, "no ingest worker heartbeat", "last_heartbeat", last.UTC().Format(time.RFC3339), "age_s", age.Seconds())
	h.Audit.Record(ctx, audit.Event{Type: audit.TypeWorkerHeartbeatMissed, Outcome: audit.OutcomeFailure, ActorType: audit.ActorSystem,
		ResourceType: "ingest_worker", Metadata: map[string]any{"last_heartbeat": last.UTC().Format(time.RFC3339), "age_s": int64(age.Seconds()),
			"stale_after_s": int64(h.StaleAfter.Seconds())}})
	return true
}
