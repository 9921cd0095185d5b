package reqstats_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/pkg/reqstats"
)

func TestQuantileInterpolatesWithinItsBucket(t *testing.T) {
	c := reqstats.Counts{Buckets: make([]int64, len(reqstats.BoundsMS)+1)}
	require.Zero(t, c.Quantile(0.95), "no requests")
	c.Buckets[4] = 100 // 50 < ms <= 100
	require.Equal(t, 75.0, c.Quantile(0.5))
	require.Equal(t, 97.5, c.Quantile(0.95))
	c.Buckets[len(c.Buckets)-1] = 100 // above the last bound
	require.Equal(t, reqstats.BoundsMS[len(reqstats.BoundsMS)-1], c.Quantile(0.99))
}

// Two replicas flush into the same minutes; a window sums both; minutes outside it do
// not count.
func TestReplicasAddUp(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.New(t)
	now := time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	a := reqstats.New(rdb, prefix, "a", logging.Discard()).WithClock(clock)
	b := reqstats.New(rdb, prefix, "b", logging.Discard()).WithClock(clock)
	for range 3 {
		a.Observe(20*time.Millisecond, false, "class:read", "slo:api")
	}
	b.Observe(300*time.Millisecond, true, "class:read", "slo:api")
	a.Gauge("runs_open", 2)
	b.Gauge("runs_open", 1)
	require.NoError(t, a.Flush(ctx))
	require.NoError(t, b.Flush(ctx))

	w, err := a.Window(ctx, 5*time.Minute)
	require.NoError(t, err)
	require.EqualValues(t, 4, w["class:read"].Requests)
	require.EqualValues(t, 1, w["class:read"].Errors)
	require.EqualValues(t, 3, w["class:read"].Buckets[2])
	gauges, err := b.Gauges(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string]int64{"runs_open": 3}, gauges)

	now = now.Add(10 * time.Minute)
	w, err = a.Window(ctx, 5*time.Minute)
	require.NoError(t, err)
	require.Zero(t, w["class:read"].Requests, "older than the window")
	w, err = a.Window(ctx, time.Hour)
	require.NoError(t, err)
	require.EqualValues(t, 4, w["class:read"].Requests)
}

// What a flush could not write is kept for the next one.
func TestAFailedFlushLosesNothing(t *testing.T) {
	ctx := context.Background()
	srv := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	s := reqstats.New(rdb, "x:", "a", logging.Discard())
	s.Observe(time.Millisecond, false, "class:run")
	srv.Stop()
	require.Error(t, s.Flush(ctx))
	srv.Start()
	require.NoError(t, s.Flush(ctx))
	w, err := s.Window(ctx, 2*time.Minute) // the observation's minute, should the flushes cross into the next
	require.NoError(t, err)
	require.EqualValues(t, 1, w["class:run"].Requests)
}
