package billing

import (
	"context"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/quota"
)

// Self-serve: a tenant's admin reads its usage and plan, asks for an upgrade and tests
// the billing webhook. The tenant is always the caller's.

const (
	maxWindowDays     = 400
	maxSeriesDays     = 90
	defaultWindowDays = 30
	maxReasonLen      = 1000
	shownUpgrades     = 10
)

// caller is the calling principal and what billing keeps about its tenant.
func (s *Server) caller(ctx context.Context) (principal.Principal, tenantRecord, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return p, tenantRecord{}, err
	}
	rec, err := s.store.Tenant(ctx, p.TenantID)
	return p, rec, err
}

// WithWebhooks lets the server send test events through d (nil: webhooks are off).
func (s *Server) WithWebhooks(d *Dispatcher) *Server {
	s.webhooks = d
	return s
}

// GetUsageSummary sums the caller's tenant's requests over the last window_days days.
func (s *Server) GetUsageSummary(ctx context.Context, req *billingv1.GetUsageSummaryRequest) (*billingv1.GetUsageSummaryResponse, error) {
	p, rec, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	days := int(req.GetWindowDays())
	if days == 0 {
		days = defaultWindowDays
	}
	if days < 1 || days > maxWindowDays {
		return nil, apierr.InvalidArgument("window_days", "window_days must be 1 to 400")
	}
	now := s.usage.now().UTC()
	from := quota.DayStart(now).AddDate(0, 0, -(days - 1))
	series, err := s.series(ctx, p.TenantID, "day", from, now)
	if err != nil {
		return nil, err
	}
	settings, err := s.quotaSettings(ctx, rec)
	if err != nil {
		return nil, err
	}
	out := &billingv1.GetUsageSummaryResponse{TenantId: p.TenantID, WindowDays: int32(days), Start: from.Format(quota.DayFormat), Quota: settings,
		DayRemaining:   max(0, settings.GetQuota().GetDailyRequestsLimit()-settings.GetDayUsed()),
		MonthRemaining: max(0, settings.GetQuota().GetMonthlyRequestsLimit()-settings.GetMonthUsed())}
	for _, pt := range series {
		out.Requests += pt.GetValue()
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeSelfServeUsageViewed, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: p.TenantID,
		Metadata: map[string]any{"view": "summary", "window_days": days}})
	return out, nil
}

// GetUsageTimeseries returns the caller's tenant's requests per UTC day or hour.
func (s *Server) GetUsageTimeseries(ctx context.Context, req *billingv1.GetUsageTimeseriesRequest) (*billingv1.GetUsageTimeseriesResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	metric, granularity, days := req.GetMetric(), req.GetGranularity(), int(req.GetDays())
	if metric == "" {
		metric = "requests"
	}
	if granularity == "" {
		granularity = quota.Day
	}
	if days == 0 {
		days = defaultWindowDays
	}
	switch {
	case metric != "requests":
		return nil, apierr.InvalidArgument("metric", "metric must be requests")
	case granularity != quota.Day && granularity != "hour":
		return nil, apierr.InvalidArgument("granularity", "granularity must be day or hour")
	case days < 1 || days > maxSeriesDays:
		return nil, apierr.InvalidArgument("days", "days must be 1 to 90")
	}
	now := s.usage.now().UTC()
	points, err := s.series(ctx, p.TenantID, granularity, quota.DayStart(now).AddDate(0, 0, -(days-1)), now)
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeSelfServeUsageViewed, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: p.TenantID,
		Metadata: map[string]any{"view": "timeseries", "granularity": granularity, "days": days}})
	return &billingv1.GetUsageTimeseriesResponse{Metric: metric, Granularity: granularity, Points: points}, nil
}

// series is tenant's requests per day or hour from from to now (the current bucket
// included), the current day and hour from the live counters when ahead of the rollup.
func (s *Server) series(ctx context.Context, tenant, granularity string, from, now time.Time) ([]*billingv1.UsagePoint, error) {
	step, current := func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }, quota.DayStart(now)
	if granularity == "hour" {
		step, current = func(t time.Time) time.Time { return t.Add(time.Hour) }, quota.HourStart(now)
	}
	sums, err := s.store.UsageBuckets(ctx, tenant, granularity, from, step(current))
	if err != nil {
		return nil, err
	}
	if live, err := quota.Read(ctx, s.usage.rdb, s.usage.prefix, tenant, now); err == nil {
		n := live.Day
		if granularity == "hour" {
			n = live.Hour
		}
		sums[current] = max(sums[current], n)
	}
	var out []*billingv1.UsagePoint
	for t := from; !t.After(current); t = step(t) {
		out = append(out, &billingv1.UsagePoint{Start: timestamppb.New(t), Value: sums[t]})
	}
	return out, nil
}

// GetSelfServePlan returns the caller's tenant's plan, quotas and latest upgrade requests.
func (s *Server) GetSelfServePlan(ctx context.Context, _ *billingv1.GetSelfServePlanRequest) (*billingv1.GetSelfServePlanResponse, error) {
	p, rec, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	settings, err := s.quotaSettings(ctx, rec)
	if err != nil {
		return nil, err
	}
	reqs, err := s.store.UpgradeRequests(ctx, p.TenantID, shownUpgrades)
	if err != nil {
		return nil, err
	}
	out := &billingv1.GetSelfServePlanResponse{Plan: s.tenantPlan(rec), Quota: settings}
	for _, r := range reqs {
		out.UpgradeRequests = append(out.UpgradeRequests, s.upgradeProto(r, s.planOf(rec).ID))
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeSelfServePlanViewed, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: p.TenantID,
		Metadata: map[string]any{"plan_id": s.planOf(rec).ID}})
	return out, nil
}

// RequestPlanUpgrade records a request for a plan above the tenant's, with its webhook event.
func (s *Server) RequestPlanUpgrade(ctx context.Context, req *billingv1.RequestPlanUpgradeRequest) (*billingv1.RequestPlanUpgradeResponse, error) {
	p, rec, err := s.caller(ctx)
	if err != nil {
		return nil, err
	}
	current := s.planOf(rec).ID
	if _, ok := planByID(req.GetTargetPlan()); !ok {
		return nil, apierr.InvalidArgument("target_plan", "target_plan must be one of "+strings.Join(PlanIDs(), ", "))
	}
	if rank(req.GetTargetPlan()) <= rank(current) {
		return nil, apierr.InvalidArgument("target_plan", "the tenant is on "+current+"; target_plan must be a plan above it")
	}
	if utf8.RuneCountInString(req.GetReason()) > maxReasonLen {
		return nil, apierr.InvalidArgument("reason", "reason must be at most 1000 characters")
	}
	r := upgradeRequest{id: uuid.NewString(), tenant: p.TenantID, currentPlan: current, targetPlan: req.GetTargetPlan(), reason: req.GetReason(), requestedBy: p.KeyID}
	data := map[string]any{"request_id": r.id, "current_plan": current, "target_plan": r.targetPlan, "reason": r.reason}
	if r, err = s.store.CreateUpgradeRequest(ctx, r, *s.event(audit.TypeUpgradeRequested, p.TenantID, data)); err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeUpgradeRequested, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: p.TenantID, Metadata: data})
	return &billingv1.RequestPlanUpgradeResponse{UpgradeRequest: s.upgradeProto(r, current)}, nil
}

// rank orders the plans: free < pro < enterprise.
func rank(planID string) int {
	return slices.IndexFunc(Plans, func(p Plan) bool { return p.ID == planID })
}

func (s *Server) upgradeProto(r upgradeRequest, currentPlan string) *billingv1.UpgradeRequest {
	status := "pending"
	if rank(currentPlan) >= rank(r.targetPlan) {
		status = "granted"
	}
	return &billingv1.UpgradeRequest{RequestId: r.id, CurrentPlan: r.currentPlan, TargetPlan: r.targetPlan, Reason: r.reason, Status: status,
		CreatedAt: timestamppb.New(r.createdAt)}
}

// TestBillingWebhook sends one signed billing.webhook_test event now and reports the answer.
func (s *Server) TestBillingWebhook(ctx context.Context, _ *billingv1.TestBillingWebhookRequest) (*billingv1.TestBillingWebhookResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if s.webhooks == nil {
		return nil, apierr.New(codes.FailedPrecondition, CodeWebhookNotConfigured, "billing webhooks are off on this platform (BILLING_WEBHOOK_ENABLED); ask its operator")
	}
	ev := newEvent(EventWebhookTest, p.TenantID, map[string]any{"message": "a test event, sent at an admin's request"}, true)
	start := time.Now()
	status, sendErr := s.webhooks.Send(ctx, ev.eventType, ev.body)
	out := &billingv1.TestBillingWebhookResponse{EventId: ev.id, Delivered: sendErr == nil, StatusCode: int32(status), LatencyMs: time.Since(start).Milliseconds()}
	outcome := audit.OutcomeSuccess
	if sendErr != nil {
		out.Error, outcome = describe(sendErr), audit.OutcomeFailure
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeSelfServeWebhookTested, Outcome: outcome, ResourceType: "billing_webhook_event", ResourceID: ev.id,
		Metadata: map[string]any{"delivered": out.GetDelivered(), "status_code": status, "error": out.GetError()}})
	return out, nil
}
