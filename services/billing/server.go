package billing

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Recorder is where the service sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.billing.v1.BillingService.
type Server struct {
	billingv1.UnimplementedBillingServiceServer
	cfg   Config
	store *Store
	audit Recorder
	log   *slog.Logger
}

// NewServer returns the BillingService implementation.
func NewServer(cfg Config, store *Store, rec Recorder, log *slog.Logger) *Server {
	return &Server{cfg: cfg, store: store, audit: rec, log: log}
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
	rec, err := s.store.SetPlan(ctx, req.GetTenantId(), req.GetPlanId())
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
	rec, err := s.store.SetOverride(ctx, req.GetTenantId(), req.GetFeatureKey(), req.Enabled, config)
	if err != nil {
		return nil, err
	}
	md := map[string]any{"feature_key": req.GetFeatureKey(), "removed": req.Enabled == nil}
	if req.Enabled != nil {
		md["enabled"] = req.GetEnabled()
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
	return &billingv1.Entitlements{TenantId: rec.tenantID, Revision: rec.revision,
		Features: enabledKeys(effective(s.planOf(rec), rec.overrides))}
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
