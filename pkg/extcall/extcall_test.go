package extcall_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/breaker"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

var policy = extcall.Policy{Timeout: 50 * time.Millisecond, Attempts: 3, BaseBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Jitter: 0.2}

func TestRetriesOnlyRetryableFailuresOfIdempotentCalls(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "down")
	tests := []struct {
		name       string
		idempotent bool
		errs       []error // per attempt; nil is success
		calls      int32
		wantErr    error
	}{
		{"success", true, []error{nil}, 1, nil},
		{"recovers on retry", true, []error{unavailable, unavailable, nil}, 3, nil},
		{"gives up after the attempts", true, []error{unavailable, unavailable, unavailable, nil}, 3, unavailable},
		{"a bad request is not retried", true, []error{status.Error(codes.InvalidArgument, "bad")}, 1, status.Error(codes.InvalidArgument, "bad")},
		{"refused credentials are not retried", true, []error{apierr.New(codes.FailedPrecondition, "AWS_AUTH_ERROR", "no")}, 1, nil},
		{"not idempotent: one attempt", false, []error{unavailable, nil}, 1, unavailable},
		{"permanent is not retried", true, []error{extcall.Permanent(unavailable), nil}, 1, unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			c := extcall.New("fake", policy, nil)
			err := c.Do(context.Background(), tt.idempotent, func(context.Context) error {
				n := calls.Add(1)
				return tt.errs[n-1]
			})
			require.Equal(t, tt.calls, calls.Load())
			switch {
			case tt.wantErr != nil:
				require.Equal(t, status.Code(tt.wantErr), status.Code(err))
			case tt.name == "refused credentials are not retried":
				require.ErrorIs(t, err, apierr.New(0, "AWS_AUTH_ERROR", ""))
			default:
				require.NoError(t, err)
			}
		})
	}
}

func TestTimeoutPerAttempt(t *testing.T) {
	var calls atomic.Int32
	c := extcall.New("slowpoke", policy, nil)
	start := time.Now()
	err := c.Do(context.Background(), true, func(ctx context.Context) error {
		calls.Add(1)
		<-ctx.Done() // hangs until the attempt's timeout
		return ctx.Err()
	})
	require.ErrorIs(t, err, apierr.New(0, extcall.CodeTimeout, ""))
	require.EqualValues(t, 3, calls.Load(), "a timeout is retried")
	require.Less(t, time.Since(start), 2*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = c.Do(ctx, true, func(ctx context.Context) error { return ctx.Err() })
	require.ErrorIs(t, err, context.Canceled, "the caller's cancellation is not a timeout")
}

func TestBreakerOpensAndFailsFast(t *testing.T) {
	rdb, prefix := redistest.New(t)
	now := time.Unix(1_800_000_000, 0)
	b := breaker.New(rdb, prefix, "provider", breaker.Settings{FailureThreshold: 3, OpenFor: time.Minute, ProbeTimeout: time.Second},
		nil, logging.Discard()).WithClock(func() time.Time { return now })
	c := extcall.New("provider", policy, b)
	var calls atomic.Int32
	failing := func(context.Context) error { calls.Add(1); return status.Error(codes.Unavailable, "down") }

	require.Error(t, c.Do(context.Background(), true, failing))
	require.EqualValues(t, 3, calls.Load(), "three failed attempts open the breaker")
	err := c.Do(context.Background(), true, failing)
	require.ErrorIs(t, err, apierr.New(0, breaker.CodeCircuitOpen, ""))
	require.EqualValues(t, 3, calls.Load(), "open: fails fast without calling")

	now = now.Add(time.Minute)
	require.NoError(t, c.Do(context.Background(), true, func(context.Context) error { return nil }), "half-open probe succeeds")
	state, _ := b.State(context.Background())
	require.Equal(t, breaker.Closed, state)
}
