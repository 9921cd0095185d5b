package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/quota"
)

// Recorder is where the service sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.billing.v1.BillingService.
type Server struct {
	billingv1.UnimplementedBillingServiceServer
	maintenance *maintenance.Runner // nil: RunBillingMaintenance answers unavailable
	cfg         Config
	store       *Store
	usage       *Usage
	webhooks    *Dispatcher // nil: webhooks are off
	audit       Recorder
	log         *slog.Logger
}

// NewServer returns the BillingService implementation; usage reads the request counters.
func NewServer(cfg Config, store *Store, usage *Usage, rec Recorder, log *slog.Logger) *Server {
	return &Server{cfg: cfg, store: store, usage: usage, audit: rec, log: log}
}

// ListPlans lists the plans and the features each grants.
func (s *Server) ListPlans(context.Context, *billingv1.ListPlansRequest) (*billingv1.ListPlansResponse, error) {
	out := &billingv1.ListPlansResponse{FeatureKeys: entitlements.Keys, DefaultPlanId: s.cfg.DefaultPlanID}
	for _, p := range Plans {
		out.Plans = append(out.Plans, &billingv1.Plan{PlanId: p.ID, Name: p.Name, Features: p.Features})
	}
	return out, nil
}

// GetTenantPlan returns the caller's tenant's plan and effective features.
func (s *Server) GetTenantPlan(ctx context.Context, req *billingv1.GetTenantPlanRequest) (*billingv1.GetTenantPlanResponse, error) {
	if err := ownTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	rec, err := s.store.Tenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	return &billingv1.GetTenantPlanResponse{Plan: s.tenantPlan(rec)}, nil
}

// SetTenantPlan assigns a plan to the caller's tenant.
func (s *Server) SetTenantPlan(ctx context.Context, req *billingv1.SetTenantPlanRequest) (*billingv1.SetTenantPlanResponse, error) {
	if err := ownTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if _, ok := planByID(req.GetPlanId()); !ok {
		return nil, apierr.InvalidArgument("plan_id", fmt.Sprintf("plan_id must be one of %s", strings.Join(PlanIDs(), ", ")))
	}
	before, err := s.store.Tenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	rec, err := s.store.SetPlan(ctx, req.GetTenantId(), req.GetPlanId(), func(rec tenantRecord) *outboxEvent {
		return s.event(audit.TypePlanChanged, rec.tenantID, map[string]any{"plan_id": rec.planID, "previous_plan_id": s.planOf(before).ID})
	})
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypePlanChanged, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: rec.tenantID,
		Metadata: map[string]any{"plan_id": rec.planID, "previous_plan_id": s.planOf(before).ID, "previous_assigned": before.planID != ""}})
	return &billingv1.SetTenantPlanResponse{Plan: s.tenantPlan(rec)}, nil
}

// SetFeatureOverride grants, withdraws or (enabled unset) forgets one feature of the
// caller's tenant.
func (s *Server) SetFeatureOverride(ctx context.Context, req *billingv1.SetFeatureOverrideRequest) (*billingv1.SetFeatureOverrideResponse, error) {
	if err := ownTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	if !entitlements.Known(req.GetFeatureKey()) {
		return nil, apierr.InvalidArgument("feature_key", fmt.Sprintf("feature_key %q is not a feature; the features are %s",
			req.GetFeatureKey(), strings.Join(entitlements.Keys, ", ")))
	}
	var config []byte
	if req.ConfigJson != nil {
		if req.Enabled == nil {
			return nil, apierr.InvalidArgument("config_json", "config_json needs enabled: an override without enabled is removed")
		}
		var err error
		if config, err = json.Marshal(req.GetConfigJson().AsMap()); err != nil {
			return nil, apierr.InvalidArgument("config_json", "config_json must be a JSON object")
		}
	}
	md := map[string]any{"feature_key": req.GetFeatureKey(), "removed": req.Enabled == nil}
	if req.Enabled != nil {
		md["enabled"] = req.GetEnabled()
	}
	rec, err := s.store.SetOverride(ctx, req.GetTenantId(), req.GetFeatureKey(), req.Enabled, config, func(rec tenantRecord) *outboxEvent {
		return s.event(audit.TypePlanOverrideChanged, rec.tenantID, md)
	})
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypePlanOverrideChanged, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: rec.tenantID, Metadata: md})
	return &billingv1.SetFeatureOverrideResponse{Plan: s.tenantPlan(rec)}, nil
}

// GetEntitlements returns a tenant's enabled features (internal: the services' caches).
func (s *Server) GetEntitlements(ctx context.Context, req *billingv1.GetEntitlementsRequest) (*billingv1.GetEntitlementsResponse, error) {
	if req.GetTenantId() == "" {
		return nil, apierr.InvalidArgument("tenant_id", "tenant_id is required")
	}
	rec, err := s.store.Tenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	return &billingv1.GetEntitlementsResponse{Entitlements: s.entitlements(rec)}, nil
}

// ListEntitlementChanges returns the tenants changed after a revision (internal).
func (s *Server) ListEntitlementChanges(ctx context.Context, req *billingv1.ListEntitlementChangesRequest) (*billingv1.ListEntitlementChangesResponse, error) {
	if req.GetAfterRevision() < 0 {
		return nil, apierr.InvalidArgument("after_revision", "after_revision must be 0 or more")
	}
	recs, rev, more, err := s.store.Changes(ctx, req.GetAfterRevision(), req.GetCurrentOnly())
	if err != nil {
		return nil, err
	}
	out := &billingv1.ListEntitlementChangesResponse{Revision: rev, More: more, DefaultPlanId: s.cfg.DefaultPlanID}
	for _, r := range recs {
		out.Changed = append(out.Changed, s.entitlements(r))
	}
	return out, nil
}

// maxRequestsLimit bounds a quota limit.
const maxRequestsLimit = 1_000_000_000_000

// GetQuota returns the caller's tenant's quotas and what it used.
func (s *Server) GetQuota(ctx context.Context, req *billingv1.GetQuotaRequest) (*billingv1.GetQuotaResponse, error) {
	if err := ownTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	rec, err := s.store.Tenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	settings, err := s.quotaSettings(ctx, rec)
	if err != nil {
		return nil, err
	}
	return &billingv1.GetQuotaResponse{Quota: settings}, nil
}

// UpdateQuota changes the caller's tenant's quotas.
func (s *Server) UpdateQuota(ctx context.Context, req *billingv1.UpdateQuotaRequest) (*billingv1.UpdateQuotaResponse, error) {
	if err := ownTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	q := quotaSettings{daily: req.DailyRequestsLimit, monthly: req.MonthlyRequestsLimit, softCapRatio: req.SoftCapRatio, hardCap: req.HardCapEnabled}
	for _, l := range []struct {
		field string
		v     *int64
	}{{"daily_requests_limit", q.daily}, {"monthly_requests_limit", q.monthly}} {
		if l.v != nil && (*l.v < 1 || *l.v > maxRequestsLimit) {
			return nil, apierr.InvalidArgument(l.field, fmt.Sprintf("%s must be 1 to %d", l.field, int64(maxRequestsLimit)))
		}
	}
	if r := q.softCapRatio; r != nil && (!(*r > 0) || *r > 1) {
		return nil, apierr.InvalidArgument("soft_cap_ratio", "soft_cap_ratio must be above 0 and at most 1")
	}
	if !q.any() {
		return nil, apierr.InvalidArgument("daily_requests_limit",
			"nothing to update: send daily_requests_limit, monthly_requests_limit, soft_cap_ratio and/or hard_cap_enabled")
	}
	quotaData := func(rec tenantRecord) map[string]any {
		eff := s.quotaOf(rec)
		return map[string]any{"daily_requests_limit": eff.Daily, "monthly_requests_limit": eff.Monthly, "soft_cap_ratio": eff.SoftCapRatio, "hard_cap_enabled": eff.HardCap}
	}
	rec, err := s.store.SetQuota(ctx, req.GetTenantId(), q, func(rec tenantRecord) *outboxEvent {
		return s.event(audit.TypeQuotaChanged, rec.tenantID, quotaData(rec))
	})
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeQuotaChanged, Outcome: audit.OutcomeSuccess, ResourceType: "tenant", ResourceID: rec.tenantID,
		Metadata: quotaData(rec)})
	settings, err := s.quotaSettings(ctx, rec)
	if err != nil {
		return nil, err
	}
	return &billingv1.UpdateQuotaResponse{Quota: settings}, nil
}

func (s *Server) quotaSettings(ctx context.Context, rec tenantRecord) (*billingv1.QuotaSettings, error) {
	out := &billingv1.QuotaSettings{TenantId: rec.tenantID, Quota: s.quotaOf(rec).proto(), Source: "plan"}
	if rec.quota.any() {
		out.Source = "tenant"
	}
	var err error
	out.DayUsed, out.MonthUsed, err = s.usage.Used(ctx, rec.tenantID)
	return out, err
}

// usageDays and usageMonths are how many buckets GetUsage returns.
const (
	usageDays   = 31
	usageMonths = 12
)

// GetUsage returns the caller's tenant's counted requests per UTC day or month.
func (s *Server) GetUsage(ctx context.Context, req *billingv1.GetUsageRequest) (*billingv1.GetUsageResponse, error) {
	if err := ownTenant(ctx, req.GetTenantId()); err != nil {
		return nil, err
	}
	period := req.GetPeriod()
	if period == "" {
		period = quota.Day
	}
	if period != quota.Day && period != quota.Month {
		return nil, apierr.InvalidArgument("period", "period must be day or month")
	}
	now := s.usage.now().UTC()
	var from time.Time
	if req.GetStart() == "" {
		from = quota.DayStart(now).AddDate(0, 0, -(usageDays - 1))
		if period == quota.Month {
			from = quota.MonthStart(now).AddDate(0, -(usageMonths - 1), 0)
		}
	} else {
		t, err := time.Parse(quota.DayFormat, req.GetStart())
		if err != nil {
			return nil, apierr.InvalidArgument("start", "start must be a date, YYYY-MM-DD")
		}
		from = t
	}
	n, step := usageDays, func(t time.Time) time.Time { return t.AddDate(0, 0, 1) }
	if period == quota.Month {
		from, n, step = quota.MonthStart(from), usageMonths, func(t time.Time) time.Time { return t.AddDate(0, 1, 0) }
	}
	to := from
	for range n {
		to = step(to)
	}
	sums, err := s.store.UsageBuckets(ctx, req.GetTenantId(), period, from, to)
	if err != nil {
		return nil, err
	}
	// The current day and month: the live counters when they are ahead of the last rollup.
	day, month, err := s.usage.Used(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	current, live := quota.DayStart(now), day
	if period == quota.Month {
		current, live = quota.MonthStart(now), month
	}
	if !current.Before(from) && current.Before(to) {
		sums[current] = max(sums[current], live)
	}
	out := &billingv1.GetUsageResponse{TenantId: req.GetTenantId(), Period: period}
	for t := from; t.Before(to); t = step(t) {
		out.Buckets = append(out.Buckets, &billingv1.UsageBucket{Start: t.Format(quota.DayFormat), Requests: sums[t]})
		out.Total += sums[t]
	}
	return out, nil
}

// ReportQuotaEvent records a soft cap a tenant crossed (the gateway reports each once per
// period).
func (s *Server) ReportQuotaEvent(ctx context.Context, req *billingv1.ReportQuotaEventRequest) (*billingv1.ReportQuotaEventResponse, error) {
	switch {
	case req.GetTenantId() == "":
		return nil, apierr.InvalidArgument("tenant_id", "tenant_id is required")
	case req.GetEventType() != audit.TypeQuotaSoftCapReached:
		return nil, apierr.InvalidArgument("event_type", "event_type must be "+audit.TypeQuotaSoftCapReached)
	case req.GetPeriod() != quota.Day && req.GetPeriod() != quota.Month:
		return nil, apierr.InvalidArgument("period", "period must be day or month")
	}
	if _, err := time.Parse(quota.DayFormat, req.GetPeriodStart()); err != nil {
		return nil, apierr.InvalidArgument("period_start", "period_start must be YYYY-MM-DD")
	}
	data := map[string]any{"period": req.GetPeriod(), "period_start": req.GetPeriodStart(), "used": req.GetUsed(), "limit": req.GetLimit()}
	// Once per tenant and period: a report the gateway repeats (it could not tell it
	// was received) finds the key taken.
	ev := s.event(audit.TypeQuotaSoftCapReached, req.GetTenantId(), data)
	key := strings.Join([]string{audit.TypeQuotaSoftCapReached, req.GetTenantId(), req.GetPeriod(), req.GetPeriodStart()}, "/")
	ev.dedupKey = &key
	first, err := s.store.RecordEvent(ctx, *ev)
	if err != nil {
		return nil, err
	}
	if first {
		s.audit.Record(ctx, audit.Event{Type: audit.TypeQuotaSoftCapReached, Outcome: audit.OutcomeSuccess, TenantID: req.GetTenantId(),
			ActorType: audit.ActorSystem, ResourceType: "tenant", ResourceID: req.GetTenantId(), Metadata: data})
	}
	return &billingv1.ReportQuotaEventResponse{}, nil
}

// event is a webhook event of tenant, pending when webhooks are on, else unsent.
func (s *Server) event(eventType, tenant string, data map[string]any) *outboxEvent {
	ev := newEvent(eventType, tenant, data, s.cfg.Webhook.Enabled)
	return &ev
}

// ownTenant refuses a tenant other than the caller's, saying nothing about it.
func ownTenant(ctx context.Context, tenant string) error {
	p, err := principal.Require(ctx)
	if err != nil {
		return err
	}
	if tenant == "" {
		return apierr.InvalidArgument("tenant_id", "tenant_id is required")
	}
	if tenant != p.TenantID {
		return apierr.New(codes.PermissionDenied, apierr.CodeForbidden, "an admin manages the billing of their own tenant only", "tenant_id", tenant)
	}
	return nil
}

func (s *Server) planOf(rec tenantRecord) Plan {
	if p, ok := planByID(rec.planID); ok {
		return p
	}
	p, _ := planByID(s.cfg.DefaultPlanID)
	return p
}

func (s *Server) entitlements(rec tenantRecord) *billingv1.Entitlements {
	fs := effective(s.planOf(rec), rec.overrides)
	return &billingv1.Entitlements{TenantId: rec.tenantID, Revision: rec.revision, Features: enabledKeys(fs), Quota: s.quotaOf(rec).proto(),
		PlanId: s.planOf(rec).ID}
}

// quotaOf is a tenant's effective quota: its own values over its plan's defaults.
func (s *Server) quotaOf(rec tenantRecord) Quota {
	q := defaultQuota(s.planOf(rec), effective(s.planOf(rec), rec.overrides))
	if v := rec.quota.daily; v != nil {
		q.Daily = *v
	}
	if v := rec.quota.monthly; v != nil {
		q.Monthly = *v
	}
	if v := rec.quota.softCapRatio; v != nil {
		q.SoftCapRatio = *v
	}
	if v := rec.quota.hardCap; v != nil {
		q.HardCap = *v
	}
	return q
}

func (q Quota) proto() *billingv1.Quota {
	return &billingv1.Quota{DailyRequestsLimit: q.Daily, MonthlyRequestsLimit: q.Monthly, SoftCapRatio: q.SoftCapRatio, HardCapEnabled: q.HardCap}
}

func (s *Server) tenantPlan(rec tenantRecord) *billingv1.TenantPlan {
	out := &billingv1.TenantPlan{TenantId: rec.tenantID, PlanId: s.planOf(rec).ID, Assigned: rec.planID != ""}
	if !rec.updatedAt.IsZero() {
		out.UpdatedAt = timestamppb.New(rec.updatedAt)
	}
	for _, f := range effective(s.planOf(rec), rec.overrides) {
		pf := &billingv1.Feature{FeatureKey: f.key, Enabled: f.enabled, Source: "plan"}
		if f.override {
			pf.Source = "override"
			var m map[string]any
			if json.Unmarshal(f.config, &m) == nil && len(m) > 0 {
				pf.ConfigJson, _ = structpb.NewStruct(m)
			}
		}
		out.Features = append(out.Features, pf)
	}
	return out
}

// WithMaintenance sets the runner of this service's maintenance tasks.
func (s *Server) WithMaintenance(r *maintenance.Runner) *Server {
	s.maintenance = r
	return s
}

// RunBillingMaintenance runs one of this service's maintenance tasks now (internal: ops).
func (s *Server) RunBillingMaintenance(ctx context.Context, req *billingv1.RunBillingMaintenanceRequest) (*billingv1.RunBillingMaintenanceResponse, error) {
	run, err := s.maintenance.OnDemand(ctx, req.GetTask())
	if err != nil {
		return nil, err
	}
	return &billingv1.RunBillingMaintenanceResponse{Run: run}, nil
}
