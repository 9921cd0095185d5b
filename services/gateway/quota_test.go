package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/quota"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

// quotaOf answers the same quota for every tenant, or an error.
type quotaOf struct {
	q   *billingv1.Quota
	err error
}

func (s quotaOf) Quota(context.Context, string) (*billingv1.Quota, error) { return s.q, s.err }

// reports counts soft-cap reports, failing while fail is set.
type reports struct {
	mu   sync.Mutex
	got  []*billingv1.ReportQuotaEventRequest
	fail atomic.Bool
	seen chan struct{}
}

func (r *reports) ReportQuotaEvent(_ context.Context, req *billingv1.ReportQuotaEventRequest, _ ...grpc.CallOption) (*billingv1.ReportQuotaEventResponse, error) {
	defer func() { r.seen <- struct{}{} }()
	if r.fail.Load() {
		return nil, errors.New("billing is down")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, req)
	return &billingv1.ReportQuotaEventResponse{}, nil
}

// clock is a settable clock for the quota periods.
type clock struct{ now atomic.Pointer[time.Time] }

func (c *clock) set(t time.Time) { c.now.Store(&t) }
func (c *clock) Now() time.Time  { return *c.now.Load() }

func quotaLimiter(t *testing.T, q *billingv1.Quota, at time.Time) (*RateLimiter, *reports, *clock, *audittest.Recorder) {
	t.Helper()
	rdb, prefix := redistest.New(t)
	c := &clock{}
	c.set(at)
	rep := &reports{seen: make(chan struct{}, 16)}
	rec := &audittest.Recorder{}
	l := NewRateLimiter(rdb, prefix, RateLimitOptions{Timeout: time.Second, RefusedAuditInterval: time.Hour, DegradedAuditInterval: time.Hour,
		Quotas: quotaOf{q: q}, Reports: rep, QuotaFailOpen: true, Now: c.Now}, rec, logging.Discard())
	return l, rep, c, rec
}

func quotaDetail(t *testing.T, body []byte) map[string]any {
	t.Helper()
	var b struct {
		Detail map[string]any `json:"detail"`
	}
	require.NoError(t, json.Unmarshal(body, &b))
	return b.Detail
}

var nov29 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func TestQuotaCountsAndSaysSo(t *testing.T) {
	l, rep, _, _ := quotaLimiter(t, &billingv1.Quota{DailyRequestsLimit: 10, MonthlyRequestsLimit: 100, SoftCapRatio: 0.8, HardCapEnabled: true}, nov29)
	res := serveThrough(t, l)
	require.Equal(t, http.StatusOK, res.Code)
	for name, want := range map[string]string{
		"X-Quota-Day-Limit": "10", "X-Quota-Day-Used": "1", "X-Quota-Day-Remaining": "9",
		"X-Quota-Month-Limit": "100", "X-Quota-Month-Used": "1", "X-Quota-Month-Remaining": "99",
		"X-Quota-SoftCap-Reached": "false", "X-Quota-HardCap-Mode": "enforce",
	} {
		require.Equal(t, want, res.Header().Get(name), name)
	}
	res = serveRoute(t, l, "t1", http.MethodPost, "/v1/run")
	require.Equal(t, "4", res.Header().Get("X-Quota-Day-Used"), "a run counts 3")
	require.Equal(t, "1", serveRoute(t, l, "t2", http.MethodGet, "/v1/corpora").Header().Get("X-Quota-Day-Used"), "per tenant")

	// The soft cap (8 of 10): crossed by the request that reaches it, reported once.
	for range 3 {
		res = serveThrough(t, l)
	}
	require.Equal(t, "7", res.Header().Get("X-Quota-Day-Used"))
	require.Equal(t, "false", res.Header().Get("X-Quota-SoftCap-Reached"))
	res = serveThrough(t, l)
	require.Equal(t, "true", res.Header().Get("X-Quota-SoftCap-Reached"))
	<-rep.seen
	res = serveThrough(t, l)
	require.Equal(t, "true", res.Header().Get("X-Quota-SoftCap-Reached"))
	require.Len(t, rep.got, 1, "once per tenant and period")
	require.Equal(t, &billingv1.ReportQuotaEventRequest{TenantId: "t1", EventType: "quota.soft_cap_reached", Period: "day",
		PeriodStart: "2026-11-29", Used: 8, Limit: 10}, rep.got[0])
}

func TestHardCapRefusesWithoutOverAdmission(t *testing.T) {
	l, _, _, rec := quotaLimiter(t, &billingv1.Quota{DailyRequestsLimit: 100, MonthlyRequestsLimit: 1000, SoftCapRatio: 1, HardCapEnabled: true}, nov29)
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range 4 {
				switch serveThrough(t, l).Code {
				case http.StatusOK:
					admitted.Add(1)
				case http.StatusPaymentRequired:
					refused.Add(1)
				}
			}
		})
	}
	wg.Wait()
	require.EqualValues(t, 100, admitted.Load(), "exactly the daily limit, from 50 clients at once")
	require.EqualValues(t, 100, refused.Load())

	res := serveThrough(t, l)
	require.Equal(t, http.StatusPaymentRequired, res.Code)
	require.Equal(t, map[string]any{"code": "QUOTA_EXCEEDED", "message": "Daily request quota exceeded", "period": "day",
		"limit": float64(100), "used": float64(100), "remaining": float64(0)}, quotaDetail(t, res.Body.Bytes()))
	require.Equal(t, "0", res.Header().Get("X-Quota-Day-Remaining"))
	require.Equal(t, 1, rec.Count(audit.TypeQuotaHardCapBlocked), "sampled: once per tenant and period")
	// A run costs 3: with 2 left it does not fit, so nothing is counted.
	l2, _, _, _ := quotaLimiter(t, &billingv1.Quota{DailyRequestsLimit: 2, MonthlyRequestsLimit: 1000, SoftCapRatio: 1, HardCapEnabled: true}, nov29)
	require.Equal(t, http.StatusPaymentRequired, serveRoute(t, l2, "t1", http.MethodPost, "/v1/run").Code)
	k := quota.KeysAt(l2.prefix, "t1", nov29)
	for _, key := range []string{k.Day, k.Month} {
		ttl, err := l2.rdb.PTTL(context.Background(), key).Result()
		require.NoError(t, err)
		require.Positive(t, ttl, "%s: a counter a refusal created expires", key)
	}
	require.Equal(t, "1", serveThrough(t, l2).Header().Get("X-Quota-Day-Used"))
	for _, key := range []string{k.Hour, k.Day, k.Month} {
		ttl, err := l2.rdb.PTTL(context.Background(), key).Result()
		require.NoError(t, err)
		require.Positive(t, ttl, "%s: every counter expires", key)
	}
}

func TestMonthlyCapAndObserveMode(t *testing.T) {
	l, _, _, _ := quotaLimiter(t, &billingv1.Quota{DailyRequestsLimit: 100, MonthlyRequestsLimit: 3, SoftCapRatio: 0.8, HardCapEnabled: true}, nov29)
	for range 3 {
		require.Equal(t, http.StatusOK, serveThrough(t, l).Code)
	}
	res := serveThrough(t, l)
	require.Equal(t, http.StatusPaymentRequired, res.Code)
	d := quotaDetail(t, res.Body.Bytes())
	require.Equal(t, "month", d["period"])
	require.Equal(t, "Monthly request quota exceeded", d["message"])

	obs, _, _, rec := quotaLimiter(t, &billingv1.Quota{DailyRequestsLimit: 2, MonthlyRequestsLimit: 100, SoftCapRatio: 0.8, HardCapEnabled: false}, nov29)
	for i := range 5 {
		res := serveThrough(t, obs)
		require.Equal(t, http.StatusOK, res.Code, "observe mode lets request %d through", i+1)
		require.Equal(t, "observe", res.Header().Get("X-Quota-HardCap-Mode"))
	}
	require.Equal(t, "6", serveThrough(t, obs).Header().Get("X-Quota-Day-Used"), "every request counted, past the limit")
	require.Equal(t, 1, rec.Count(audit.TypeQuotaOverageObserved), "sampled")
}

// Periods are UTC days and months: a new day resets the daily count, a new month both.
func TestQuotaPeriodsFollowUTC(t *testing.T) {
	q := &billingv1.Quota{DailyRequestsLimit: 2, MonthlyRequestsLimit: 5, SoftCapRatio: 1, HardCapEnabled: true}
	l, _, c, _ := quotaLimiter(t, q, time.Date(2026, 11, 29, 23, 59, 59, 0, time.UTC))
	require.Equal(t, http.StatusOK, serveThrough(t, l).Code)
	require.Equal(t, http.StatusOK, serveThrough(t, l).Code)
	require.Equal(t, http.StatusPaymentRequired, serveThrough(t, l).Code)

	// Midnight in UTC, whatever the local zone of the clock's value.
	c.set(time.Date(2026, 11, 30, 0, 30, 0, 0, time.FixedZone("UTC+1", 3600)))
	require.Equal(t, http.StatusPaymentRequired, serveThrough(t, l).Code, "00:30 on the 30th in UTC+1 is still the 29th in UTC")
	c.set(time.Date(2026, 11, 30, 0, 0, 1, 0, time.UTC))
	res := serveThrough(t, l)
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "1", res.Header().Get("X-Quota-Day-Used"))
	require.Equal(t, "3", res.Header().Get("X-Quota-Month-Used"), "the month goes on")

	c.set(time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC))
	require.Equal(t, http.StatusOK, serveThrough(t, l).Code)
	require.Equal(t, http.StatusPaymentRequired, serveThrough(t, l).Code)
	c.set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	res = serveThrough(t, l)
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "1", res.Header().Get("X-Quota-Month-Used"), "a new month")
}

// A soft cap billing could not be told about is reported by the next request.
func TestSoftCapReportIsRetried(t *testing.T) {
	l, rep, _, _ := quotaLimiter(t, &billingv1.Quota{DailyRequestsLimit: 10, MonthlyRequestsLimit: 1000, SoftCapRatio: 0.1, HardCapEnabled: true}, nov29)
	rep.fail.Store(true)
	serveThrough(t, l)
	<-rep.seen
	require.Eventually(t, func() bool {
		rep.fail.Store(false)
		serveThrough(t, l)
		select {
		case <-rep.seen:
		case <-time.After(time.Second):
		}
		rep.mu.Lock()
		defer rep.mu.Unlock()
		return len(rep.got) == 1
	}, 5*time.Second, time.Millisecond)
}

// Rate limits and quotas share one round trip; a rate-limited request counts nothing.
func TestRateLimitedRequestsAreNotCounted(t *testing.T) {
	rdb, prefix := redistest.New(t)
	o := limits(Bucket{Rate: 0.001, Burst: 1}, Bucket{Rate: 10, Burst: 10})
	o.Quotas = quotaOf{q: &billingv1.Quota{DailyRequestsLimit: 10, MonthlyRequestsLimit: 100, SoftCapRatio: 1, HardCapEnabled: true}}
	l := NewRateLimiter(rdb, prefix, o, &audittest.Recorder{}, logging.Discard())
	require.Equal(t, http.StatusOK, serveThrough(t, l).Code)
	require.Equal(t, http.StatusTooManyRequests, serveThrough(t, l).Code)
	require.Equal(t, "2", serveRoute(t, l, "t1", http.MethodPost, "/v1/documents/text").Header().Get("X-Quota-Day-Used"),
		"the refused read counted nothing; this write (no buckets for its class) counts")
}

// Without its counters or the tenant's quota, QUOTA_FAIL_MODE decides.
func TestQuotaFailModes(t *testing.T) {
	srv := redistest.StartServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	q := quotaOf{q: &billingv1.Quota{DailyRequestsLimit: 10, MonthlyRequestsLimit: 100, SoftCapRatio: 1, HardCapEnabled: true}}
	o := RateLimitOptions{Timeout: 200 * time.Millisecond, DegradedAuditInterval: time.Hour, RefusedAuditInterval: time.Hour, Quotas: q, QuotaFailOpen: true}
	open := NewRateLimiter(rdb, "q:", o, &audittest.Recorder{}, logging.Discard())
	o.QuotaFailOpen = false
	closed := NewRateLimiter(rdb, "q:", o, &audittest.Recorder{}, logging.Discard())
	o.Quotas, o.QuotaFailOpen = quotaOf{err: errors.New("billing is down")}, false
	noBilling := NewRateLimiter(rdb, "q:", o, &audittest.Recorder{}, logging.Discard())

	res := serveThrough(t, noBilling)
	require.Equal(t, http.StatusServiceUnavailable, res.Code)
	require.Contains(t, res.Body.String(), "QUOTA_UNAVAILABLE")

	srv.Stop()
	res = serveThrough(t, open)
	require.Equal(t, http.StatusOK, res.Code)
	require.Equal(t, "degraded", res.Header().Get("X-Quota-Status"))
	require.Empty(t, res.Header().Get("X-RateLimit-Status"), "rate limiting is off")
	res = serveThrough(t, closed)
	require.Equal(t, http.StatusServiceUnavailable, res.Code)
	require.Contains(t, res.Body.String(), "QUOTA_UNAVAILABLE")
}
