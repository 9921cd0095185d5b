package gateway

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
)

// RunStreams keeps the events of runs in Redis streams for RUN_STREAM_RESUME_TTL, so that
// a client that lost its connection resumes a run on any gateway replica: it sends the
// last SSE id it read as Last-Event-ID and gets the events after it, then the rest live.
//
// A stream is key <prefix>run-stream:<id>, one entry per event with the entry id 0-<seq>
// (seq counts from 1, so ids only grow and XREAD after 0-<seq> is "after this event"),
// and <prefix>run-stream:<id>:owner, the tenant and key that started the run: only they
// can resume it.
type RunStreams struct {
	rdb    redis.UniversalClient
	prefix string
	ttl    time.Duration
}

// NewRunStreams keeps run streams in rdb under prefix for ttl after their last event.
func NewRunStreams(rdb redis.UniversalClient, prefix string, ttl time.Duration) *RunStreams {
	return &RunStreams{rdb: rdb, prefix: prefix, ttl: ttl}
}

// streamEntry is one stored event.
type streamEntry struct {
	seq     int64
	event   string
	payload string // the SSE data line, as first written
}

func (s *RunStreams) key(id string) string      { return s.prefix + "run-stream:" + id }
func (s *RunStreams) ownerKey(id string) string { return s.key(id) + ":owner" }

// create records a new stream of owner and returns its id.
func (s *RunStreams) create(ctx context.Context, owner string) (string, error) {
	id := uuid.NewString()
	if err := s.rdb.Set(ctx, s.ownerKey(id), owner, s.ttl).Err(); err != nil {
		return "", fmt.Errorf("record run stream: %w", err)
	}
	return id, nil
}

// owner is who started stream id; "" when it does not exist (never, or expired).
func (s *RunStreams) owner(ctx context.Context, id string) (string, error) {
	v, err := s.rdb.Get(ctx, s.ownerKey(id)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	return v, err
}

// append stores event seq of stream id and keeps the stream for another ttl.
func (s *RunStreams) append(ctx context.Context, id string, e streamEntry) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAdd(ctx, &redis.XAddArgs{Stream: s.key(id), ID: "0-" + strconv.FormatInt(e.seq, 10), Values: []any{"e", e.event, "d", e.payload}})
		p.Expire(ctx, s.key(id), s.ttl)
		p.Expire(ctx, s.ownerKey(id), s.ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store run event %d: %w", e.seq, err)
	}
	return nil
}

// read returns the events of stream id after seq, waiting up to block for the first one
// (none: an empty answer).
func (s *RunStreams) read(ctx context.Context, id string, after int64, block time.Duration) ([]streamEntry, error) {
	res, err := s.rdb.XRead(ctx, &redis.XReadArgs{
		Streams: []string{s.key(id), "0-" + strconv.FormatInt(after, 10)}, Count: 256, Block: block,
	}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run stream: %w", err)
	}
	var out []streamEntry
	for _, stream := range res {
		for _, m := range stream.Messages {
			_, n, _ := strings.Cut(m.ID, "-")
			seq, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("read run stream: entry id %q", m.ID)
			}
			event, _ := m.Values["e"].(string)
			payload, _ := m.Values["d"].(string)
			out = append(out, streamEntry{seq: seq, event: event, payload: payload})
		}
	}
	return out, nil
}

// resumeID is the SSE id of event seq of stream id: what a client sends back as
// Last-Event-ID.
func resumeID(id string, seq int64) string { return id + "." + strconv.FormatInt(seq, 10) }

// parseResumeID splits a Last-Event-ID written by resumeID.
func parseResumeID(v string) (id string, seq int64, ok bool) {
	id, n, found := strings.Cut(v, ".")
	if !found || uuid.Validate(id) != nil {
		return "", 0, false
	}
	seq, err := strconv.ParseInt(n, 10, 64)
	if err != nil || seq < 0 {
		return "", 0, false
	}
	return id, seq, true
}
