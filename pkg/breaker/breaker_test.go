package breaker_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/breaker"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

// TestStateMachine reads like the breaker's specification: one step per row.
func TestStateMachine(t *testing.T) {
	rdb, prefix := redistest.New(t)
	now := time.Unix(1_800_000_000, 0)
	settings := breaker.Settings{FailureThreshold: 3, OpenFor: 10 * time.Second, ProbeTimeout: 2 * time.Second}
	b := breaker.New(rdb, prefix, "bedrock", settings, nil, logging.Discard()).WithClock(func() time.Time { return now })
	// A second replica: same Redis state, same clock.
	other := breaker.New(rdb, prefix, "bedrock", settings, nil, logging.Discard()).WithClock(func() time.Time { return now })
	ctx := context.Background()

	type step struct {
		name    string
		advance time.Duration
		on      *breaker.Breaker
		call    bool // ask Allow
		allowed bool
		record  string // "ok", "fail" or ""
		state   string // state afterwards
	}
	steps := []step{
		{"closed passes", 0, b, true, true, "fail", breaker.Closed},
		{"second failure", 0, b, true, true, "fail", breaker.Closed},
		{"a success resets the count", 0, b, true, true, "ok", breaker.Closed},
		{"failure 1", 0, b, true, true, "fail", breaker.Closed},
		{"failure 2 (other replica)", 0, other, true, true, "fail", breaker.Closed},
		{"failure 3 opens", 0, b, true, true, "fail", breaker.Open},
		{"open fails fast", time.Second, b, true, false, "", breaker.Open},
		{"open fails fast on every replica", 0, other, true, false, "", breaker.Open},
		{"after the open period a probe goes", 10 * time.Second, b, true, true, "", breaker.HalfOpen},
		{"only one probe at a time", 0, other, true, false, "", breaker.HalfOpen},
		{"the probe fails: open again", 0, b, false, false, "fail", breaker.Open},
		{"open again", 5 * time.Second, other, true, false, "", breaker.Open},
		{"next probe", 6 * time.Second, other, true, true, "", breaker.HalfOpen},
		{"a probe that hangs past its lease lets another go", 3 * time.Second, b, true, true, "", breaker.HalfOpen},
		{"the probe succeeds: closed", 0, b, false, false, "ok", breaker.Closed},
		{"closed passes again", 0, other, true, true, "", breaker.Closed},
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if s.call {
			err := s.on.Allow(ctx)
			if s.allowed {
				require.NoError(t, err, s.name)
			} else {
				require.ErrorIs(t, err, apierr.New(0, breaker.CodeCircuitOpen, ""), s.name)
			}
		}
		switch s.record {
		case "ok":
			s.on.Record(ctx, false)
		case "fail":
			s.on.Record(ctx, true)
		}
		state, err := b.State(ctx)
		require.NoError(t, err)
		require.Equal(t, s.state, state, s.name)
	}
}

func TestUnreachableRedisLetsCallsThrough(t *testing.T) {
	rdb, _ := redistest.New(t)
	require.NoError(t, rdb.Close())
	b := breaker.New(rdb, "x:", "tts", breaker.Settings{FailureThreshold: 1, OpenFor: time.Hour, ProbeTimeout: time.Second}, nil, logging.Discard())
	require.NoError(t, b.Allow(context.Background()))
	b.Record(context.Background(), true)
	require.NoError(t, b.Allow(context.Background()))
}
