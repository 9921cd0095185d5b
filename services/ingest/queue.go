package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Queue holds ingestion jobs on a Redis stream read by a consumer group. A job stays
// pending until its worker acknowledges it (after the chunks are committed); a job whose
// worker died is claimed by another worker once it has been idle for the claim timeout,
// and a worker keeps its long jobs from being claimed by touching them.
type Queue struct {
	rdb    redis.UniversalClient
	stream string
	group  string
	prefix string
	maxLen int64
}

// Job is one delivery of a job.
type Job struct {
	// ID is the stream entry id; Ack and Touch take it.
	ID         string
	Kind       string // ingest | reindex
	TenantID   string
	CorpusID   string
	DocumentID string
	// Version is the document version the job was queued for.
	Version int64
	// Deliveries counts how often the job was handed out (1 on first delivery).
	Deliveries int64
}

// Job kinds.
const (
	KindIngest  = "ingest"
	KindReindex = "reindex"
)

// NewQueue returns the queue under the Redis key prefix.
func NewQueue(rdb redis.UniversalClient, prefix string) *Queue {
	return &Queue{rdb: rdb, prefix: prefix, stream: prefix + "ingest:jobs", group: "ingest-workers", maxLen: 1_000_000}
}

// Ensure creates the stream and the consumer group when missing (idempotent).
func (q *Queue) Ensure(ctx context.Context) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.stream, q.group, "0").Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("create consumer group %s on %s: %w", q.group, q.stream, err)
	}
	return nil
}

// Enqueue adds a job and returns its id.
func (q *Queue) Enqueue(ctx context.Context, j Job) (string, error) {
	id, err := q.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: q.stream, MaxLen: q.maxLen, Approx: true,
		Values: map[string]any{"kind": j.Kind, "tenant_id": j.TenantID, "corpus_id": j.CorpusID, "document_id": j.DocumentID, "version": j.Version},
	}).Result()
	if err != nil {
		return "", fmt.Errorf("enqueue %s job for document %s: %w", j.Kind, j.DocumentID, err)
	}
	return id, nil
}

// recreated runs op, and once more after recreating the consumer group when Redis lost
// it (a restart without persistence): workers carry on without a restart of their own.
func (q *Queue) recreated(ctx context.Context, op func() error) error {
	err := op()
	if err != nil && strings.HasPrefix(err.Error(), "NOGROUP") {
		if err := q.Ensure(ctx); err != nil {
			return err
		}
		err = op()
	}
	return err
}

// Read hands out up to count new jobs to consumer, waiting at most block for one.
func (q *Queue) Read(ctx context.Context, consumer string, count int, block time.Duration) ([]Job, error) {
	var streams []redis.XStream
	err := q.recreated(ctx, func() (err error) {
		streams, err = q.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: q.group, Consumer: consumer, Streams: []string{q.stream, ">"}, Count: int64(count), Block: block,
		}).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	var jobs []Job
	for _, s := range streams {
		for _, m := range s.Messages {
			jobs = append(jobs, jobOf(m, 1))
		}
	}
	return jobs, nil
}

// Reclaim moves to consumer up to count jobs that other consumers have held idle for at
// least minIdle (their worker died or hung), with their delivery counts.
func (q *Queue) Reclaim(ctx context.Context, consumer string, minIdle time.Duration, count int) ([]Job, error) {
	var msgs []redis.XMessage
	err := q.recreated(ctx, func() (err error) {
		msgs, _, err = q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: q.stream, Group: q.group, Consumer: consumer, MinIdle: minIdle, Start: "0-0", Count: int64(count),
		}).Result()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reclaim jobs: %w", err)
	}
	jobs := make([]Job, 0, len(msgs))
	for _, m := range msgs {
		deliveries := int64(1)
		if p, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: q.stream, Group: q.group, Start: m.ID, End: m.ID, Count: 1}).Result(); err == nil && len(p) == 1 {
			deliveries = p[0].RetryCount
		}
		jobs = append(jobs, jobOf(m, deliveries))
	}
	return jobs, nil
}

// Touch resets the idle time of jobs consumer is still working on, so they are not reclaimed.
func (q *Queue) Touch(ctx context.Context, consumer string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	err := q.rdb.XClaimJustID(ctx, &redis.XClaimArgs{Stream: q.stream, Group: q.group, Consumer: consumer, MinIdle: 0, Messages: ids}).Err()
	if err != nil {
		return fmt.Errorf("touch jobs: %w", err)
	}
	return nil
}

// Ack marks a job done and removes it from the stream.
func (q *Queue) Ack(ctx context.Context, id string) error {
	pipe := q.rdb.TxPipeline()
	pipe.XAck(ctx, q.stream, q.group, id)
	pipe.XDel(ctx, q.stream, id)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("ack job %s: %w", id, err)
	}
	return nil
}

// Pending is the number of jobs handed out and not yet acknowledged.
func (q *Queue) Pending(ctx context.Context) (int64, error) {
	p, err := q.rdb.XPending(ctx, q.stream, q.group).Result()
	if err != nil {
		return 0, fmt.Errorf("pending jobs: %w", err)
	}
	return p.Count, nil
}

// Heartbeat records that worker is alive, for ttl, and that some worker was alive now.
func (q *Queue) Heartbeat(ctx context.Context, worker string, ttl time.Duration) error {
	now := strconv.FormatInt(time.Now().Unix(), 10)
	pipe := q.rdb.Pipeline()
	pipe.Set(ctx, q.prefix+"ingest:worker:"+worker, now, ttl)
	pipe.Set(ctx, q.lastBeatKey(), now, 7*24*time.Hour)
	_, err := pipe.Exec(ctx)
	return err
}

func (q *Queue) lastBeatKey() string { return q.prefix + "ingest:workers:last" }

// LastBeat returns when any worker last reported (the zero time: none within a week, or
// Redis lost it).
func (q *Queue) LastBeat(ctx context.Context) (time.Time, error) {
	v, err := q.rdb.Get(ctx, q.lastBeatKey()).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("last worker heartbeat: %w", err)
	}
	return time.Unix(v, 0), nil
}

// Depth is the number of jobs on the queue, handed out or not (an acknowledged job is
// deleted).
func (q *Queue) Depth(ctx context.Context) (int64, error) {
	n, err := q.rdb.XLen(ctx, q.stream).Result()
	if err != nil {
		return 0, fmt.Errorf("queue depth: %w", err)
	}
	return n, nil
}

// markMissed marks the heartbeat of last as missed; false when it was marked already.
func (q *Queue) markMissed(ctx context.Context, last time.Time) (bool, error) {
	return q.rdb.SetNX(ctx, q.prefix+"ingest:workers:missed", last.Unix(), 7*24*time.Hour).Result()
}

// clearMissed forgets a missed heartbeat once a worker reports again.
func (q *Queue) clearMissed(ctx context.Context) error {
	return q.rdb.Del(ctx, q.prefix+"ingest:workers:missed").Err()
}

// LastHeartbeat returns when worker last reported, or the zero time when it has not
// within its ttl.
func (q *Queue) LastHeartbeat(ctx context.Context, worker string) (time.Time, error) {
	v, err := q.rdb.Get(ctx, q.prefix+"ingest:worker:"+worker).Int64()
	if errors.Is(err, redis.Nil) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(v, 0), nil
}

func jobOf(m redis.XMessage, deliveries int64) Job {
	s := func(k string) string { v, _ := m.Values[k].(string); return v }
	version, _ := strconv.ParseInt(s("version"), 10, 64)
	return Job{ID: m.ID, Kind: s("kind"), TenantID: s("tenant_id"), CorpusID: s("corpus_id"), DocumentID: s("document_id"),
		Version: version, Deliveries: deliveries}
}
