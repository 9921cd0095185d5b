package billing_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/services/billing"
)

func newClient(t *testing.T, defaultPlan string) (billingv1.BillingServiceClient, *audittest.Recorder) {
	t.Helper()
	c, rec, _ := newClientAt(t, defaultPlan, nil)
	return c, rec
}

// newClientAt is a billing service with its own Redis key prefix whose clock is now
// (nil: time.Now); it returns the usage rollup too.
func newClientAt(t *testing.T, defaultPlan string, now func() time.Time) (billingv1.BillingServiceClient, *audittest.Recorder, *billing.Usage) {
	t.Helper()
	pool := pgtest.NewPool(t, billing.Migrations())
	rdb, prefix := redistest.New(t)
	rec := &audittest.Recorder{}
	store := billing.NewStore(pool)
	usage := billing.NewUsage(store, rdb, prefix, 400*24*time.Hour, now, rec, logging.Discard())
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&billingv1.BillingService_ServiceDesc, billing.NewServer(billing.Config{DefaultPlanID: defaultPlan}, store, usage, rec, logging.Discard()))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	return billingv1.NewBillingServiceClient(conn), rec, usage
}

func admin(tenant string) context.Context {
	return principal.With(context.Background(), principal.Principal{TenantID: tenant, KeyID: "k-" + tenant, Role: apiv1.Role_ROLE_ADMIN})
}

func enabled(p *billingv1.TenantPlan) []string {
	var out []string
	for _, f := range p.GetFeatures() {
		if f.GetEnabled() {
			out = append(out, f.GetFeatureKey())
		}
	}
	return out
}

func code(err error) string {
	e, _ := apierr.FromStatus(status.Convert(err))
	return e.Code
}

// The plans grant exactly the matrix of the product's plans.
func TestPlanMatrix(t *testing.T) {
	c, _ := newClient(t, "free")
	res, err := c.ListPlans(admin("t1"), &billingv1.ListPlansRequest{})
	require.NoError(t, err)
	require.Equal(t, "free", res.GetDefaultPlanId())
	require.Equal(t, entitlements.Keys, res.GetFeatureKeys())
	got := map[string][]string{}
	for _, p := range res.GetPlans() {
		got[p.GetPlanId()] = p.GetFeatures()
	}
	e := entitlements.Keys
	require.Equal(t, map[string][]string{
		"free":       {entitlements.RetrievalLocal},
		"pro":        {e[0], e[2], e[3], e[4], e[5], e[6], e[7]},
		"enterprise": e,
	}, got)
	// The keys of the matrix, spelled out once: the product's names.
	require.Equal(t, []string{"feature.retrieval.local_pgvector", "feature.retrieval.aws_bedrock_kb", "feature.retrieval.gcp_vertex",
		"feature.tts", "feature.ops_admin_access", "feature.audit_access", "feature.corpora_patch_provider_config",
		"feature.billing_webhook_test", "feature.high_quota_tier"}, e)
}

func TestAssignPlansAndOverrides(t *testing.T) {
	c, rec := newClient(t, "free")
	ctx := admin("t1")
	got, err := c.GetTenantPlan(ctx, &billingv1.GetTenantPlanRequest{TenantId: "t1"})
	require.NoError(t, err)
	require.Equal(t, "free", got.GetPlan().GetPlanId())
	require.False(t, got.GetPlan().GetAssigned(), "a tenant without a plan has the default one")
	require.Equal(t, []string{entitlements.RetrievalLocal}, enabled(got.GetPlan()))

	set, err := c.SetTenantPlan(ctx, &billingv1.SetTenantPlanRequest{TenantId: "t1", PlanId: "pro"})
	require.NoError(t, err)
	require.True(t, set.GetPlan().GetAssigned())
	require.Contains(t, enabled(set.GetPlan()), entitlements.TTS)
	require.NotContains(t, enabled(set.GetPlan()), entitlements.RetrievalBedrock)
	require.Equal(t, 1, rec.Count(audit.TypePlanChanged))

	// An override grants one feature beyond the plan, with its configuration...
	cfg, _ := structpb.NewStruct(map[string]any{"region": "eu-west-1"})
	over, err := c.SetFeatureOverride(ctx, &billingv1.SetFeatureOverrideRequest{TenantId: "t1", FeatureKey: entitlements.RetrievalBedrock,
		Enabled: proto.Bool(true), ConfigJson: cfg})
	require.NoError(t, err)
	require.Contains(t, enabled(over.GetPlan()), entitlements.RetrievalBedrock)
	var bedrock *billingv1.Feature
	for _, f := range over.GetPlan().GetFeatures() {
		if f.GetFeatureKey() == entitlements.RetrievalBedrock {
			bedrock = f
		}
	}
	require.Equal(t, "override", bedrock.GetSource())
	require.Equal(t, "eu-west-1", bedrock.GetConfigJson().AsMap()["region"])
	// ...or withdraws one the plan grants; another plan keeps the overrides.
	_, err = c.SetFeatureOverride(ctx, &billingv1.SetFeatureOverrideRequest{TenantId: "t1", FeatureKey: entitlements.TTS, Enabled: proto.Bool(false)})
	require.NoError(t, err)
	ent, err := c.SetTenantPlan(ctx, &billingv1.SetTenantPlanRequest{TenantId: "t1", PlanId: "enterprise"})
	require.NoError(t, err)
	require.NotContains(t, enabled(ent.GetPlan()), entitlements.TTS)
	// Without enabled, the override goes and the plan decides again.
	back, err := c.SetFeatureOverride(ctx, &billingv1.SetFeatureOverrideRequest{TenantId: "t1", FeatureKey: entitlements.TTS})
	require.NoError(t, err)
	require.Contains(t, enabled(back.GetPlan()), entitlements.TTS)
	require.Equal(t, 3, rec.Count(audit.TypePlanOverrideChanged))
}

func TestRequestsAreValidatedAndScopedToTheCallersTenant(t *testing.T) {
	c, _ := newClient(t, "free")
	ctx := admin("t1")
	_, err := c.SetTenantPlan(admin("t2"), &billingv1.SetTenantPlanRequest{TenantId: "t2", PlanId: "pro"}) // t2 exists now
	require.NoError(t, err)
	for _, tt := range []struct {
		name  string
		call  func() error
		code  string
		field string
	}{
		{"unknown plan", func() error {
			_, err := c.SetTenantPlan(ctx, &billingv1.SetTenantPlanRequest{TenantId: "t1", PlanId: "gold"})
			return err
		}, apierr.CodeInvalidArgument, "plan_id"},
		{"unknown feature", func() error {
			_, err := c.SetFeatureOverride(ctx, &billingv1.SetFeatureOverrideRequest{TenantId: "t1", FeatureKey: "feature.teleport", Enabled: proto.Bool(true)})
			return err
		}, apierr.CodeInvalidArgument, "feature_key"},
		{"config without enabled", func() error {
			cfg, _ := structpb.NewStruct(map[string]any{"a": 1})
			_, err := c.SetFeatureOverride(ctx, &billingv1.SetFeatureOverrideRequest{TenantId: "t1", FeatureKey: entitlements.TTS, ConfigJson: cfg})
			return err
		}, apierr.CodeInvalidArgument, "config_json"},
		{"no tenant", func() error {
			_, err := c.GetTenantPlan(ctx, &billingv1.GetTenantPlanRequest{})
			return err
		}, apierr.CodeInvalidArgument, "tenant_id"},
		{"another tenant that exists", func() error {
			_, err := c.GetTenantPlan(ctx, &billingv1.GetTenantPlanRequest{TenantId: "t2"})
			return err
		}, apierr.CodeForbidden, ""},
		{"another tenant that does not", func() error {
			_, err := c.GetTenantPlan(ctx, &billingv1.GetTenantPlanRequest{TenantId: "t9"})
			return err
		}, apierr.CodeForbidden, ""},
		{"changing another tenant's plan", func() error {
			_, err := c.SetTenantPlan(ctx, &billingv1.SetTenantPlanRequest{TenantId: "t2", PlanId: "free"})
			return err
		}, apierr.CodeForbidden, ""},
	} {
		err := tt.call()
		require.Equal(t, tt.code, code(err), tt.name)
		e, _ := apierr.FromStatus(status.Convert(err))
		require.Equal(t, tt.field, e.Details["field"], tt.name)
	}
	// A refusal for another tenant says the same whether it exists or not.
	_, errExists := c.GetTenantPlan(ctx, &billingv1.GetTenantPlanRequest{TenantId: "t2"})
	_, errMissing := c.GetTenantPlan(ctx, &billingv1.GetTenantPlanRequest{TenantId: "t9"})
	require.Equal(t, status.Convert(errExists).Message(), status.Convert(errMissing).Message())
	got, err := c.GetTenantPlan(admin("t2"), &billingv1.GetTenantPlanRequest{TenantId: "t2"})
	require.NoError(t, err)
	require.Equal(t, "pro", got.GetPlan().GetPlanId(), "t1's attempt changed nothing")
}

// Changes come in revision order, each tenant with its entitlements at that revision;
// concurrent writers never let a cache skip one.
func TestEntitlementChanges(t *testing.T) {
	c, _ := newClient(t, "free")
	first, err := c.ListEntitlementChanges(context.Background(), &billingv1.ListEntitlementChangesRequest{CurrentOnly: true})
	require.NoError(t, err)
	require.Zero(t, first.GetRevision())
	require.Equal(t, "free", first.GetDefaultPlanId())

	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			tenant := fmt.Sprintf("t%d", i%5)
			_, err := c.SetTenantPlan(admin(tenant), &billingv1.SetTenantPlanRequest{TenantId: tenant, PlanId: []string{"free", "pro", "enterprise"}[i%3]})
			require.NoError(t, err)
		})
	}
	wg.Wait()
	res, err := c.ListEntitlementChanges(context.Background(), &billingv1.ListEntitlementChangesRequest{CurrentOnly: true})
	require.NoError(t, err)
	require.Empty(t, res.GetChanged(), "current_only: the revision alone")
	current := res.GetRevision()
	require.EqualValues(t, 20, current)

	all, err := c.ListEntitlementChanges(context.Background(), &billingv1.ListEntitlementChangesRequest{AfterRevision: first.GetRevision()})
	require.NoError(t, err)
	require.Len(t, all.GetChanged(), 5, "each tenant once, at its last revision")
	prev := int64(0)
	for _, ch := range all.GetChanged() {
		require.Greater(t, ch.GetRevision(), prev)
		prev = ch.GetRevision()
		got, err := c.GetEntitlements(context.Background(), &billingv1.GetEntitlementsRequest{TenantId: ch.GetTenantId()})
		require.NoError(t, err)
		require.True(t, proto.Equal(ch, got.GetEntitlements()), "a change carries the entitlements as they are")
	}
	require.Equal(t, current, all.GetRevision())
	none, err := c.ListEntitlementChanges(context.Background(), &billingv1.ListEntitlementChangesRequest{AfterRevision: current})
	require.NoError(t, err)
	require.Empty(t, none.GetChanged())
	require.Equal(t, current, none.GetRevision())

	_, err = c.ListEntitlementChanges(context.Background(), &billingv1.ListEntitlementChangesRequest{AfterRevision: -1})
	require.Equal(t, apierr.CodeInvalidArgument, code(err))
	unknown, err := c.GetEntitlements(context.Background(), &billingv1.GetEntitlementsRequest{TenantId: "nobody"})
	require.NoError(t, err)
	require.Equal(t, []string{entitlements.RetrievalLocal}, unknown.GetEntitlements().GetFeatures())
	require.Zero(t, unknown.GetEntitlements().GetRevision())
}

func TestConfigIsValidated(t *testing.T) {
	cfg := billing.Config{DefaultPlanID: "gold", UsageRollupInterval: time.Minute, UsageRetentionDays: 400}
	require.ErrorContains(t, cfg.Validate(), "DEFAULT_PLAN_ID")
	cfg.DefaultPlanID = "pro"
	require.NoError(t, cfg.Validate())
	cfg.UsageRetentionDays = 30
	require.ErrorContains(t, cfg.Validate(), "USAGE_COUNTER_RETENTION_DAYS")
	cfg.UsageRetentionDays, cfg.UsageRollupInterval = 400, 0
	require.ErrorContains(t, cfg.Validate(), "USAGE_ROLLUP_INTERVAL")
}
