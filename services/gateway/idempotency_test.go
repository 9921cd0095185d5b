package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"encoding/json"

	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

type idemHarness struct {
	h     http.Handler
	calls atomic.Int32
	// block, when set, holds the handler until closed.
	block  chan struct{}
	status int
}

func newIdemHarness(t *testing.T, rdb redis.UniversalClient, prefix string) *idemHarness {
	t.Helper()
	ih := &idemHarness{status: http.StatusOK}
	m := NewIdempotency(rdb, prefix, time.Hour, logging.Discard())
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := ih.calls.Add(1)
		if ih.block != nil {
			<-ih.block
		}
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(ih.status)
		fmt.Fprintf(w, `{"call":%d,"echo":%q}`, n, body)
	})
	ih.h = m.Middleware(inner)
	return ih
}

func (ih *idemHarness) do(tenant, method, path, key, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if key != "" {
		r.Header.Set(idempotentHdr, key)
	}
	r = r.WithContext(principal.With(withState(r.Context(), &reqState{requestID: "r"}), principal.Principal{TenantID: tenant}))
	w := httptest.NewRecorder()
	ih.h.ServeHTTP(w, r)
	return w
}

func errCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var env errorEnvelope
	require.NoError(t, jsonUnmarshal(w.Body.Bytes(), &env), w.Body.String())
	return env.Error.Code
}

func TestIdempotencyReplayAndConflict(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ih := newIdemHarness(t, rdb, prefix)

	first := ih.do("t1", http.MethodPatch, "/v1/api-keys/k1", "key-1", `{"name":"a"}`)
	require.Equal(t, http.StatusOK, first.Code)
	replay := ih.do("t1", http.MethodPatch, "/v1/api-keys/k1", "key-1", `{"name":"a"}`)
	require.Equal(t, http.StatusOK, replay.Code)
	require.Equal(t, first.Body.String(), replay.Body.String(), "stored response replayed")
	require.Equal(t, "true", replay.Header().Get(replayedHeader))
	require.EqualValues(t, 1, ih.calls.Load(), "the handler ran once")

	conflict := ih.do("t1", http.MethodPatch, "/v1/api-keys/k1", "key-1", `{"name":"b"}`)
	require.Equal(t, http.StatusConflict, conflict.Code)
	require.Equal(t, CodeIdempotencyConflict, errCode(t, conflict))

	otherPath := ih.do("t1", http.MethodDelete, "/v1/api-keys/k2", "key-1", "")
	require.Equal(t, http.StatusConflict, otherPath.Code, "same key, different request")

	otherTenant := ih.do("t2", http.MethodPatch, "/v1/api-keys/k1", "key-1", `{"name":"b"}`)
	require.Equal(t, http.StatusOK, otherTenant.Code, "keys are scoped per tenant")

	noKey := ih.do("t1", http.MethodPatch, "/v1/api-keys/k1", "", `{"name":"a"}`)
	require.Equal(t, http.StatusOK, noKey.Code)
	require.EqualValues(t, 3, ih.calls.Load())
}

func TestIdempotencyKeyValidation(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ih := newIdemHarness(t, rdb, prefix)
	for _, key := range []string{strings.Repeat("k", 129), "tab\there", "ünïcode"} {
		w := ih.do("t1", http.MethodPatch, "/v1/x", key, `{}`)
		require.Equal(t, http.StatusBadRequest, w.Code, key)
		require.Equal(t, CodeIdempotencyKeyInvalid, errCode(t, w))
	}
	require.Equal(t, http.StatusOK, ih.do("t1", http.MethodPatch, "/v1/x", strings.Repeat("k", 128), `{}`).Code)
	require.Equal(t, http.StatusOK, ih.do("t1", http.MethodGet, "/v1/x", "ünïcode", ``).Code, "reads ignore the header")
}

func TestIdempotencyInProgressAndServerErrors(t *testing.T) {
	rdb, prefix := redistest.New(t)
	ih := newIdemHarness(t, rdb, prefix)
	ih.block = make(chan struct{})
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- ih.do("t1", http.MethodPatch, "/v1/x", "slow", `{}`) }()
	require.Eventually(t, func() bool { return ih.calls.Load() == 1 }, 5*time.Second, 5*time.Millisecond)
	busy := ih.do("t1", http.MethodPatch, "/v1/x", "slow", `{}`)
	require.Equal(t, http.StatusConflict, busy.Code)
	require.Equal(t, CodeIdempotencyInProgress, errCode(t, busy))
	close(ih.block)
	require.Equal(t, http.StatusOK, (<-done).Code)
	ih.block = nil

	ih.status = http.StatusServiceUnavailable
	require.Equal(t, http.StatusServiceUnavailable, ih.do("t1", http.MethodPatch, "/v1/y", "retry-me", `{}`).Code)
	ih.status = http.StatusOK
	require.Equal(t, http.StatusOK, ih.do("t1", http.MethodPatch, "/v1/y", "retry-me", `{}`).Code, "a server error releases the key")
}

func TestIdempotencyWithoutRedisRefusesClearly(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer rdb.Close()
	ih := newIdemHarness(t, rdb, "x:")
	w := ih.do("t1", http.MethodPatch, "/v1/x", "k", `{}`)
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
	require.Equal(t, CodeIdempotencyUnavailable, errCode(t, w))
	require.Zero(t, ih.calls.Load(), "nothing ran without the guarantee")
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func TestPruneGivesRecordsTheirExpiryBack(t *testing.T) {
	rdb, prefix := redistest.New(t)
	m := NewIdempotency(rdb, prefix, time.Hour, logging.Discard())
	ctx := context.Background()
	require.NoError(t, rdb.Set(ctx, prefix+"idem:t1:persisted", "{}", 0).Err())
	require.NoError(t, rdb.Set(ctx, prefix+"idem:t1:fine", "{}", time.Minute).Err())
	require.NoError(t, rdb.Set(ctx, prefix+"other", "{}", 0).Err())
	res, err := m.Prune(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Affected)
	require.Contains(t, res.Detail, "scanned 2")
	ttl, err := rdb.TTL(ctx, prefix+"idem:t1:persisted").Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5)
	ttl, err = rdb.TTL(ctx, prefix+"other").Result()
	require.NoError(t, err)
	require.Equal(t, time.Duration(-1), ttl, "not an idempotency record: left alone")
}
