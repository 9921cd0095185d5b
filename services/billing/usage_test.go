package billing_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/quota"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/services/billing"
)

// count adds n requests of tenant at t, as the gateway's admission script does.
func count(t *testing.T, rdb redis.Cmdable, prefix, tenant string, at time.Time, n int64) {
	t.Helper()
	k := quota.KeysAt(prefix, tenant, at)
	for _, key := range []string{k.Hour, k.Day, k.Month} {
		require.NoError(t, rdb.IncrBy(context.Background(), key, n).Err())
	}
}

type fixedClock struct{ t atomic.Pointer[time.Time] }

func (c *fixedClock) set(t time.Time) { c.t.Store(&t) }
func (c *fixedClock) now() time.Time  { return *c.t.Load() }

// usageHarness is billing over its own redis-server (which the test may kill) and database.
type usageHarness struct {
	client billingv1.BillingServiceClient
	pool   *pgxpool.Pool
	store  *billing.Store
	usage  *billing.Usage
	rdb    *redis.Client
	redis  *redistest.Server
	clock  *fixedClock
	rec    *audittest.Recorder
}

func newUsageHarness(t *testing.T, at time.Time) *usageHarness {
	t.Helper()
	return newHarness(t, at, billing.Config{DefaultPlanID: "free"}, logging.Discard())
}

// newHarness is billing with cfg, logging to log.
func newHarness(t *testing.T, at time.Time, cfg billing.Config, log *slog.Logger) *usageHarness {
	t.Helper()
	h := &usageHarness{redis: redistest.StartServer(t), clock: &fixedClock{}, rec: &audittest.Recorder{}}
	h.clock.set(at)
	h.rdb = redis.NewClient(&redis.Options{Addr: h.redis.Addr()})
	t.Cleanup(func() { _ = h.rdb.Close() })
	h.pool = pgtest.NewPool(t, billing.Migrations())
	h.store = billing.NewStore(h.pool)
	h.usage = billing.NewUsage(h.store, h.rdb, "u:", 40*24*time.Hour, h.clock.now, h.rec, log)
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: log})
	srv.Register(&billingv1.BillingService_ServiceDesc, billing.NewServer(cfg, h.store, h.usage, h.rec, log))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	h.client = billingv1.NewBillingServiceClient(conn)
	return h
}

func (h *usageHarness) used(t *testing.T, tenant string) (int64, int64) {
	t.Helper()
	res, err := h.client.GetQuota(admin(tenant), &billingv1.GetQuotaRequest{TenantId: tenant})
	require.NoError(t, err)
	return res.GetQuota().GetDayUsed(), res.GetQuota().GetMonthUsed()
}

// The rollup copies the counters into Postgres; usage reads them per day and month.
func TestUsageIsRolledUpAndReported(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)
	h := newUsageHarness(t, at)
	count(t, h.rdb, "u:", "t1", at.AddDate(0, 0, -2), 4) // two days ago
	count(t, h.rdb, "u:", "t1", at.Add(-time.Hour), 5)   // the previous hour
	count(t, h.rdb, "u:", "t1", at, 7)
	count(t, h.rdb, "u:", "t2", at, 1)
	h.clock.set(at.AddDate(0, 0, -2))
	require.NoError(t, h.usage.Rollup(ctx))
	h.clock.set(at)
	require.NoError(t, h.usage.Rollup(ctx))
	require.Equal(t, 3, h.rec.Count(audit.TypeUsageRecorded),
		"one snapshot per tenant and hour of rollups: t1 two days ago, t1 now (not again for its previous hour), t2 now")

	day, month := h.used(t, "t1")
	require.EqualValues(t, 12, day)
	require.EqualValues(t, 16, month)
	res, err := h.client.GetUsage(admin("t1"), &billingv1.GetUsageRequest{TenantId: "t1", Period: "day", Start: "2026-11-27"})
	require.NoError(t, err)
	require.Len(t, res.GetBuckets(), 31)
	require.Equal(t, &billingv1.UsageBucket{Start: "2026-11-27", Requests: 4}, res.GetBuckets()[0])
	require.Equal(t, &billingv1.UsageBucket{Start: "2026-11-29", Requests: 12}, res.GetBuckets()[2])
	require.EqualValues(t, 16, res.GetTotal())
	res, err = h.client.GetUsage(admin("t1"), &billingv1.GetUsageRequest{TenantId: "t1", Period: "month"})
	require.NoError(t, err)
	require.Len(t, res.GetBuckets(), 12)
	require.Equal(t, &billingv1.UsageBucket{Start: "2026-11-01", Requests: 16}, res.GetBuckets()[11], "the current month last, by default")

	for _, bad := range []*billingv1.GetUsageRequest{{TenantId: "t1", Period: "week"}, {TenantId: "t1", Period: "day", Start: "29/11/2026"}} {
		_, err := h.client.GetUsage(admin("t1"), bad)
		require.Equal(t, apierr.CodeInvalidArgument, code(err))
	}
}

// A Redis that lost its data gets the counters back from Postgres on the next rollup,
// on top of what was counted since; what was counted after the last rollup before the
// loss is lost: at most one USAGE_ROLLUP_INTERVAL of requests.
func TestCountersSurviveARedisLoss(t *testing.T) {
	ctx := context.Background()
	at := time.Date(2026, 11, 29, 10, 30, 0, 0, time.UTC)
	h := newUsageHarness(t, at)
	count(t, h.rdb, "u:", "t1", at.Add(-2*time.Hour), 10) // earlier today
	h.clock.set(at.Add(-2 * time.Hour))
	require.NoError(t, h.usage.Rollup(ctx))
	h.clock.set(at)
	count(t, h.rdb, "u:", "t1", at, 5)
	require.NoError(t, h.usage.Rollup(ctx))
	count(t, h.rdb, "u:", "t1", at, 2) // after the last rollup: these are lost with Redis

	h.redis.Stop()
	h.redis.Start()                    // empty: no persistence
	count(t, h.rdb, "u:", "t1", at, 1) // counted by the gateway before the rollup notices
	require.NoError(t, h.usage.Rollup(ctx))
	live, err := quota.Read(ctx, h.rdb, "u:", "t1", at)
	require.NoError(t, err)
	require.Equal(t, quota.Used{Hour: 6, Day: 16, Month: 16}, live, "10 + 5 rebuilt, + 1 since; the 2 after the last rollup are lost")
	require.NoError(t, h.usage.Rollup(ctx))
	live, err = quota.Read(ctx, h.rdb, "u:", "t1", at)
	require.NoError(t, err)
	require.EqualValues(t, 16, live.Day, "rebuilt once, not at every rollup")
	day, month := h.used(t, "t1")
	require.EqualValues(t, 16, day)
	require.EqualValues(t, 16, month)
}

func TestQuotaSettings(t *testing.T) {
	h := newUsageHarness(t, time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC))
	ctx := admin("t1")
	got, err := h.client.GetQuota(ctx, &billingv1.GetQuotaRequest{TenantId: "t1"})
	require.NoError(t, err)
	require.Equal(t, "plan", got.GetQuota().GetSource())
	require.True(t, proto.Equal(&billingv1.Quota{DailyRequestsLimit: 1000, MonthlyRequestsLimit: 20000, SoftCapRatio: 0.8, HardCapEnabled: true}, got.GetQuota().GetQuota()),
		"free's defaults: %v", got.GetQuota().GetQuota())

	// The high tier comes with its feature, whatever the plan.
	_, err = h.client.SetFeatureOverride(ctx, &billingv1.SetFeatureOverrideRequest{TenantId: "t1", FeatureKey: entitlements.HighQuotaTier, Enabled: proto.Bool(true)})
	require.NoError(t, err)
	got, err = h.client.GetQuota(ctx, &billingv1.GetQuotaRequest{TenantId: "t1"})
	require.NoError(t, err)
	require.EqualValues(t, 100_000, got.GetQuota().GetQuota().GetDailyRequestsLimit())

	upd, err := h.client.UpdateQuota(ctx, &billingv1.UpdateQuotaRequest{TenantId: "t1", MonthlyRequestsLimit: proto.Int64(10_000), HardCapEnabled: proto.Bool(false)})
	require.NoError(t, err)
	require.Equal(t, "tenant", upd.GetQuota().GetSource())
	require.True(t, proto.Equal(&billingv1.Quota{DailyRequestsLimit: 100_000, MonthlyRequestsLimit: 10_000, SoftCapRatio: 0.8, HardCapEnabled: false}, upd.GetQuota().GetQuota()))
	require.Equal(t, 1, h.rec.Count(audit.TypeQuotaChanged))
	ent, err := h.client.GetEntitlements(context.Background(), &billingv1.GetEntitlementsRequest{TenantId: "t1"})
	require.NoError(t, err)
	require.True(t, proto.Equal(upd.GetQuota().GetQuota(), ent.GetEntitlements().GetQuota()), "the caches get the quota with the features")

	for _, tt := range []struct {
		req   *billingv1.UpdateQuotaRequest
		field string
	}{
		{&billingv1.UpdateQuotaRequest{TenantId: "t1", DailyRequestsLimit: proto.Int64(0)}, "daily_requests_limit"},
		{&billingv1.UpdateQuotaRequest{TenantId: "t1", MonthlyRequestsLimit: proto.Int64(-5)}, "monthly_requests_limit"},
		{&billingv1.UpdateQuotaRequest{TenantId: "t1", SoftCapRatio: proto.Float64(1.5)}, "soft_cap_ratio"},
		{&billingv1.UpdateQuotaRequest{TenantId: "t1", SoftCapRatio: proto.Float64(0)}, "soft_cap_ratio"},
		{&billingv1.UpdateQuotaRequest{TenantId: "t1"}, "daily_requests_limit"},
	} {
		_, err := h.client.UpdateQuota(ctx, tt.req)
		e, _ := apierr.From(err)
		require.Equal(t, apierr.CodeInvalidArgument, e.Code, "%v", tt.req)
		require.Equal(t, tt.field, e.Details["field"], "%v", tt.req)
	}
	_, err = h.client.UpdateQuota(ctx, &billingv1.UpdateQuotaRequest{TenantId: "t2", DailyRequestsLimit: proto.Int64(5)})
	require.Equal(t, apierr.CodeForbidden, code(err))
}

func TestSoftCapReports(t *testing.T) {
	h := newUsageHarness(t, time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC))
	_, err := h.client.ReportQuotaEvent(context.Background(), &billingv1.ReportQuotaEventRequest{TenantId: "t1", EventType: "quota.soft_cap_reached",
		Period: "day", PeriodStart: "2026-11-29", Used: 800, Limit: 1000})
	require.NoError(t, err)
	require.Equal(t, 1, h.rec.Count(audit.TypeQuotaSoftCapReached))
	_, err = h.client.ReportQuotaEvent(context.Background(), &billingv1.ReportQuotaEventRequest{TenantId: "t1", EventType: "quota.other", Period: "day"})
	require.Equal(t, apierr.CodeInvalidArgument, code(err))
}
