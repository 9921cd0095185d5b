package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/services/ingest"
)

func newQueue(t *testing.T) *ingest.Queue {
	t.Helper()
	rdb, prefix := redistest.New(t)
	q := ingest.NewQueue(rdb, prefix)
	require.NoError(t, q.Ensure(context.Background()))
	require.NoError(t, q.Ensure(context.Background()), "idempotent")
	return q
}

func TestQueueDeliversOnceAndAcks(t *testing.T) {
	ctx := context.Background()
	q := newQueue(t)
	id, err := q.Enqueue(ctx, ingest.Job{Kind: ingest.KindIngest, TenantID: "t1", CorpusID: "c1", DocumentID: "d1"})
	require.NoError(t, err)

	jobs, err := q.Read(ctx, "worker-a", 10, 0)
	require.NoError(t, err)
	require.Equal(t, []ingest.Job{{ID: id, Kind: ingest.KindIngest, TenantID: "t1", CorpusID: "c1", DocumentID: "d1", Deliveries: 1}}, jobs)

	again, err := q.Read(ctx, "worker-b", 10, 10*time.Millisecond)
	require.NoError(t, err)
	require.Empty(t, again, "a job goes to one consumer")
	n, _ := q.Pending(ctx)
	require.EqualValues(t, 1, n, "pending until acknowledged")

	require.NoError(t, q.Ack(ctx, id))
	n, _ = q.Pending(ctx)
	require.Zero(t, n)
	reclaimed, err := q.Reclaim(ctx, "worker-b", 0, 10)
	require.NoError(t, err)
	require.Empty(t, reclaimed, "an acknowledged job is never redelivered")
}

// TestJobOfADeadWorkerIsReclaimed: worker-a takes a job and dies without acknowledging;
// once the job has been idle for the claim timeout, worker-b gets it, with its delivery count.
func TestJobOfADeadWorkerIsReclaimed(t *testing.T) {
	ctx := context.Background()
	q := newQueue(t)
	id, err := q.Enqueue(ctx, ingest.Job{Kind: ingest.KindReindex, TenantID: "t1", CorpusID: "c1", DocumentID: "d2"})
	require.NoError(t, err)
	_, err = q.Read(ctx, "worker-a", 1, 0)
	require.NoError(t, err)

	const claimAfter = 100 * time.Millisecond
	var got []ingest.Job
	require.Eventually(t, func() bool {
		got, err = q.Reclaim(ctx, "worker-b", claimAfter, 10)
		return err == nil && len(got) == 1
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, id, got[0].ID)
	require.Equal(t, "d2", got[0].DocumentID)
	require.EqualValues(t, 2, got[0].Deliveries)
}

func TestTouchKeepsALongJobFromBeingReclaimed(t *testing.T) {
	ctx := context.Background()
	q := newQueue(t)
	id, err := q.Enqueue(ctx, ingest.Job{Kind: ingest.KindIngest, TenantID: "t1", CorpusID: "c1", DocumentID: "d3"})
	require.NoError(t, err)
	_, err = q.Read(ctx, "worker-a", 1, 0)
	require.NoError(t, err)
	// worker-a keeps touching while another worker keeps trying to claim jobs idle for 1 s:
	// a touched job is never idle that long.
	for range 5 {
		require.NoError(t, q.Touch(ctx, "worker-a", id))
		stolen, err := q.Reclaim(ctx, "worker-b", time.Second, 10)
		require.NoError(t, err)
		require.Empty(t, stolen)
	}
}

func TestHeartbeat(t *testing.T) {
	ctx := context.Background()
	q := newQueue(t)
	at, err := q.LastHeartbeat(ctx, "w1")
	require.NoError(t, err)
	require.True(t, at.IsZero())
	require.NoError(t, q.Heartbeat(ctx, "w1", time.Minute))
	at, err = q.LastHeartbeat(ctx, "w1")
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), at, 2*time.Second)
}

// A heartbeat older than StaleAfter is audited once, whoever watches, until a worker
// reports again.
func TestMissedHeartbeatIsAuditedOnce(t *testing.T) {
	ctx := context.Background()
	q := newQueue(t)
	now := time.Now()
	rec := &audittest.Recorder{}
	watch := func() ingest.HeartbeatWatch {
		return ingest.HeartbeatWatch{Queue: q, StaleAfter: 3 * time.Second, Now: func() time.Time { return now }, Audit: rec, Log: logging.Discard()}
	}
	a, b := watch(), watch()
	require.False(t, a.Check(ctx), "no worker has reported yet: nothing to miss")
	require.NoError(t, q.Heartbeat(ctx, "w1", time.Minute))
	require.False(t, a.Check(ctx), "fresh")

	now = now.Add(10 * time.Second)
	require.True(t, a.Check(ctx))
	require.False(t, b.Check(ctx), "another process sees it audited already")
	require.False(t, a.Check(ctx))
	require.Equal(t, 1, rec.Count(audit.TypeWorkerHeartbeatMissed))

	now = time.Now()
	require.NoError(t, q.Heartbeat(ctx, "w1", time.Minute))
	require.False(t, b.Check(ctx), "back: re-armed")
	now = now.Add(10 * time.Second)
	require.True(t, b.Check(ctx), "missed again")
	require.Equal(t, 2, rec.Count(audit.TypeWorkerHeartbeatMissed))

	last, err := q.LastBeat(ctx)
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), last, 2*time.Second)
	depth, err := q.Depth(ctx)
	require.NoError(t, err)
	require.Zero(t, depth)
}
