package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

func limits(key, tenant Bucket) RateLimitOptions {
	return RateLimitOptions{Limits: map[string]ClassLimits{ClassRead: {Key: key, Tenant: tenant}}, FailOpen: true,
		Timeout: time.Second, DegradedAuditInterval: time.Hour, RefusedAuditInterval: time.Hour}
}

func TestRouteClasses(t *testing.T) {
	tests := []struct{ method, template, class string }{
		{"POST", "/v1/run", ClassRun},
		{"POST", "/v1/documents", ClassMutation},
		{"POST", "/v1/documents/text", ClassMutation},
		{"POST", "/v1/documents/{document_id}/reindex", ClassMutation},
		{"DELETE", "/v1/documents/{document_id}", ClassMutation},
		{"PATCH", "/v1/corpora/{corpus_id}", ClassMutation},
		{"PATCH", "/v1/admin/quotas/{tenant_id}", ClassMutation},
		{"GET", "/v1/admin/quotas/{tenant_id}", ClassMutation},
		{"GET", "/v1/documents", ClassRead},
		{"GET", "/v1/corpora/{corpus_id}", ClassRead},
		{"GET", "/v1/auth/whoami", ClassRead},
		{"GET", "/v1/audit/events", ClassOps},
		{"GET", "/v1/ops/slo", ClassOps},
	}
	for _, tt := range tests {
		require.Equal(t, tt.class, routeClass(tt.method, tt.template), "%s %s", tt.method, tt.template)
	}
}

func TestBucketText(t *testing.T) {
	var b Bucket
	require.NoError(t, b.UnmarshalText([]byte("2.5/10")))
	require.Equal(t, Bucket{Rate: 2.5, Burst: 10}, b)
	for _, bad := range []string{"", "5", "0/5", "1/0", "a/b", "-1/3"} {
		require.Error(t, b.UnmarshalText([]byte(bad)), bad)
	}
}

func TestTokenBucketsPerKeyAndTenant(t *testing.T) {
	rdb, prefix := redistest.New(t)
	l := NewRateLimiter(rdb, prefix, limits(Bucket{Rate: 1, Burst: 3}, Bucket{Rate: 1, Burst: 5}), &audittest.Recorder{}, logging.Discard())
	ctx := context.Background()
	for i := range 3 {
		d, err := l.Allow(ctx, "t1", "k1", ClassRead)
		require.NoError(t, err)
		require.True(t, d.Allowed, "burst request %d", i+1)
	}
	d, err := l.Allow(ctx, "t1", "k1", ClassRead)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, "api_key", d.Scope)
	require.InDelta(t, time.Second, d.RetryAfter, float64(100*time.Millisecond))

	// A second key of the tenant has its own bucket but shares the tenant's: 2 tokens left.
	for range 2 {
		d, err = l.Allow(ctx, "t1", "k2", ClassRead)
		require.NoError(t, err)
		require.True(t, d.Allowed)
	}
	d, err = l.Allow(ctx, "t1", "k2", ClassRead)
	require.NoError(t, err)
	require.False(t, d.Allowed)
	require.Equal(t, "tenant", d.Scope)
	// A refused request debits nothing: k2's own bucket still holds a token, so once the
	// tenant refills k2 passes.
	d, err = l.Allow(ctx, "t2", "k9", ClassRead)
	require.NoError(t, err)
	require.True(t, d.Allowed, "other tenants are untouched")
	d, err = l.Allow(ctx, "t1", "k1", ClassRun)
	require.NoError(t, err)
	require.True(t, d.Allowed, "a class without limits passes")
}

func TestTokenBucketsRefill(t *testing.T) {
	rdb, prefix := redistest.New(t)
	l := NewRateLimiter(rdb, prefix, limits(Bucket{Rate: 50, Burst: 1}, Bucket{Rate: 50, Burst: 1}), &audittest.Recorder{}, logging.Discard())
	ctx := context.Background()
	d, _ := l.Allow(ctx, "t1", "k1", ClassRead)
	require.True(t, d.Allowed)
	d, _ = l.Allow(ctx, "t1", "k1", ClassRead)
	require.False(t, d.Allowed)
	require.Eventually(t, func() bool {
		d, err := l.Allow(ctx, "t1", "k1", ClassRead)
		return err == nil && d.Allowed
	}, 2*time.Second, 5*time.Millisecond, "refilled at 50 tokens/s")
}

// TestRedisOutage stops Redis mid-traffic: fail-open lets requests through (degraded,
// audited once), fail-closed refuses them, and limiting resumes once Redis is back.
func TestRedisOutage(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	rec := &audittest.Recorder{}
	opts := limits(Bucket{Rate: 0.001, Burst: 1}, Bucket{Rate: 0.001, Burst: 10})
	opts.Timeout = 200 * time.Millisecond
	open := NewRateLimiter(rdb, "t:", opts, rec, logging.Discard())
	opts.FailOpen = false
	closed := NewRateLimiter(rdb, "t:", opts, rec, logging.Discard())
	ctx := context.Background()

	d, err := open.Allow(ctx, "t1", "k1", ClassRead)
	require.NoError(t, err)
	require.True(t, d.Allowed)
	d, err = open.Allow(ctx, "t1", "k1", ClassRead)
	require.NoError(t, err)
	require.False(t, d.Allowed, "limited while Redis is up")

	srv.Stop()
	for range 5 {
		start := time.Now()
		_, err := open.Allow(ctx, "t1", "k1", ClassRead)
		require.Error(t, err)
		require.Less(t, time.Since(start), 2*time.Second, "never blocks past its timeout")
	}
	// Through the middleware: open passes (degraded, audited once), closed answers 503.
	for range 3 {
		res := serveThrough(t, open)
		require.Equal(t, 200, res.Code)
		require.Equal(t, "degraded", res.Header().Get("X-RateLimit-Status"))
	}
	require.Equal(t, 1, rec.Count(audit.TypeRateLimitDegraded), "once per interval, not per request")
	res := serveThrough(t, closed)
	require.Equal(t, 503, res.Code)
	require.Contains(t, res.Body.String(), CodeRateLimiterUnavailable)

	srv.Start()
	require.Eventually(t, func() bool {
		_, err := open.Allow(ctx, "t1", "k2", ClassRead)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "recovers without a restart")
	d, err = open.Allow(ctx, "t1", "k2", ClassRead)
	require.NoError(t, err)
	require.False(t, d.Allowed, "limiting again (Redis restarted empty: k2 spent its one token above)")
}

// serveThrough sends one authenticated GET /v1/documents through the limiter.
func serveThrough(t *testing.T, l *RateLimiter) *httptest.ResponseRecorder {
	t.Helper()
	return serveRoute(t, l, "t1", http.MethodGet, "/v1/documents")
}

// serveRoute sends one request of tenant's key k1 to route through the limiter.
func serveRoute(t *testing.T, l *RateLimiter, tenant, method, route string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, route, nil)
	ctx := withState(req.Context(), &reqState{requestID: "r", route: route})
	ctx = principal.With(ctx, principal.Principal{TenantID: tenant, KeyID: "k1", Role: apiv1.Role_ROLE_READER})
	res := httptest.NewRecorder()
	l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })).ServeHTTP(res, req.WithContext(ctx))
	return res
}

func TestRefusalShape(t *testing.T) {
	rdb, prefix := redistest.New(t)
	rec := &audittest.Recorder{}
	l := NewRateLimiter(rdb, prefix, limits(Bucket{Rate: 0.5, Burst: 1}, Bucket{Rate: 10, Burst: 10}), rec, logging.Discard())
	require.Equal(t, http.StatusOK, serveThrough(t, l).Code)
	for range 3 {
		res := serveThrough(t, l)
		require.Equal(t, http.StatusTooManyRequests, res.Code)
		require.Equal(t, "2", res.Header().Get("Retry-After"))
		require.Equal(t, "api_key", res.Header().Get("X-RateLimit-Scope"))
		require.Equal(t, "read", res.Header().Get("X-RateLimit-Route-Class"))
		ms, err := strconv.Atoi(res.Header().Get("X-RateLimit-Retry-After-Ms"))
		require.NoError(t, err)
		require.InDelta(t, 2000, ms, 200)
		var body struct {
			Detail map[string]any `json:"detail"`
		}
		require.NoError(t, json.Unmarshal(res.Body.Bytes(), &body))
		require.Equal(t, "RATE_LIMITED", body.Detail["code"])
		require.Equal(t, "api_key", body.Detail["scope"])
		require.Equal(t, "read", body.Detail["route_class"])
		require.EqualValues(t, ms, body.Detail["retry_after_ms"])
		require.NotEmpty(t, body.Detail["message"])
	}
	require.Equal(t, 1, rec.Count(audit.TypeSecurityRateLimited), "sampled: one event per key and class per interval")
}
