package ops_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	opsv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ops/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/pkg/reqstats"
	"github.com/nexusrag/nexusrag/services/ops"
)

var objectives = ops.Config{Window: time.Hour, AvailabilityTarget: 99.9, P95RunMS: 2500, P95APIMS: 800, P95DocumentsTextMS: 1000, BurnRateAtRisk: 2}

// sloOf records requests at fixed times and returns the SLO at now.
func sloOf(t *testing.T, record func(s *reqstats.Stats, at func(time.Time))) (*opsv1.GetSloResponse, *audittest.Recorder) {
	t.Helper()
	rdb, prefix := redistest.New(t)
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	clock := now
	stats := reqstats.New(rdb, prefix, "r1", logging.Discard()).WithClock(func() time.Time { return clock })
	record(stats, func(t time.Time) { clock = t })
	require.NoError(t, stats.Flush(context.Background()))
	clock = now
	rec := &audittest.Recorder{}
	srv := ops.NewServer(objectives, nil, nil, stats, nil, nil, rec, logging.Discard())
	res, err := srv.GetSlo(context.Background(), &opsv1.GetSloRequest{})
	require.NoError(t, err)
	return res, rec
}

func observe(s *reqstats.Stats, n int, failed bool, elapsed time.Duration, group string) {
	for range n {
		s.Observe(elapsed, failed, "class:read", "slo:"+group)
	}
}

func TestSloStatusRules(t *testing.T) {
	base := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	t.Run("healthy", func(t *testing.T) {
		res, rec := sloOf(t, func(s *reqstats.Stats, at func(time.Time)) {
			at(base.Add(-30 * time.Minute))
			observe(s, 1000, false, 20*time.Millisecond, "api")
			observe(s, 10, false, 900*time.Millisecond, "run")
		})
		require.Equal(t, "healthy", res.GetStatus(), res.GetReasons())
		require.EqualValues(t, 1010, res.GetRequests())
		require.Equal(t, 100.0, res.GetAvailability())
		require.Equal(t, 100.0, res.GetErrorBudget().GetRemainingPct())
		require.Equal(t, "1h", res.GetWindow())
		require.Equal(t, 1, rec.Count(audit.TypeOpsViewed))
	})
	t.Run("breached: the window's errors spent the budget", func(t *testing.T) {
		res, _ := sloOf(t, func(s *reqstats.Stats, at func(time.Time)) {
			at(base.Add(-40 * time.Minute)) // outside the last 5 minutes: no burn now
			observe(s, 997, false, 20*time.Millisecond, "api")
			observe(s, 3, true, 20*time.Millisecond, "api")
		})
		require.Equal(t, "breached", res.GetStatus())
		require.Equal(t, 99.7, res.GetAvailability())
		require.Zero(t, res.GetErrorBudget().GetRemainingPct())
		require.Zero(t, res.GetErrorBudget().GetBurnRate_5M())
	})
	t.Run("at risk: the last five minutes burn fast", func(t *testing.T) {
		res, _ := sloOf(t, func(s *reqstats.Stats, at func(time.Time)) {
			at(base.Add(-50 * time.Minute))
			observe(s, 20000, false, 20*time.Millisecond, "api")
			at(base.Add(-2 * time.Minute))
			observe(s, 990, false, 20*time.Millisecond, "api")
			observe(s, 10, true, 20*time.Millisecond, "api") // 1 % now: 10x the 0.1 % allowed
		})
		require.Equal(t, "at_risk", res.GetStatus(), res.GetReasons())
		require.Equal(t, 10.0, res.GetErrorBudget().GetBurnRate_5M())
		require.Greater(t, res.GetErrorBudget().GetRemainingPct(), 0.0)
	})
	t.Run("at risk: a p95 above its objective", func(t *testing.T) {
		res, _ := sloOf(t, func(s *reqstats.Stats, at func(time.Time)) {
			at(base.Add(-10 * time.Minute))
			observe(s, 100, false, 4*time.Second, "documents_text")
		})
		require.Equal(t, "at_risk", res.GetStatus())
		require.Greater(t, res.GetP95()["documents_text"], 1000.0)
		require.Contains(t, res.GetReasons()[0], "documents_text")
	})
}

func TestMetricsWindowIsValidated(t *testing.T) {
	rdb, prefix := redistest.New(t)
	srv := ops.NewServer(objectives, nil, nil, reqstats.New(rdb, prefix, "r1", logging.Discard()), nil, nil, &audittest.Recorder{}, logging.Discard())
	_, err := srv.GetOpsMetrics(context.Background(), &opsv1.GetOpsMetricsRequest{WindowMinutes: 1441})
	e, ok := apierr.From(err)
	require.True(t, ok)
	require.Equal(t, "window_minutes", e.Details["field"])
}

// A bulkhead's occupancy and refusals reach the metrics.
func TestBulkheadsAreReported(t *testing.T) {
	rdb, prefix := redistest.New(t)
	stats := reqstats.New(rdb, prefix, "r1", logging.Discard())
	b := bulkhead.New("the run service", 2)
	release, err := b.Acquire()
	require.NoError(t, err)
	defer release()
	_, err = b.Acquire()
	require.NoError(t, err)
	_, err = b.Acquire()
	require.Error(t, err, "full")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		ops.PublishBulkheads(ctx, stats, map[string]*bulkhead.Bulkhead{"run": b}, 10*time.Millisecond)
	}()
	defer func() { cancel(); <-done }()

	srv := ops.NewServer(objectives, nil, nil, stats, nil, nil, &audittest.Recorder{}, logging.Discard())
	require.Eventually(t, func() bool {
		res, err := srv.GetOpsMetrics(context.Background(), &opsv1.GetOpsMetricsRequest{})
		require.NoError(t, err)
		run := res.GetBulkheads()["run"]
		return run.GetInUse() == 2 && run.GetCapacity() == 2 && run.GetRejected() == 1
	}, 5*time.Second, 10*time.Millisecond)
}
