package entitlements_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
)

// billingStandIn answers like the billing service from a map it is told, counting the
// lookups and failing while down.
type billingStandIn struct {
	billingv1.UnimplementedBillingServiceServer
	mu          sync.Mutex
	features    map[string][]string
	revisions   map[string]int64
	revision    int64
	defaultPlan string
	lookups     int
	down        bool
	// during, when set, runs inside GetEntitlements after the answer is read.
	during func()
}

func (b *billingStandIn) set(tenant string, features ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.revision++
	b.features[tenant], b.revisions[tenant] = features, b.revision
}

func (b *billingStandIn) GetEntitlements(_ context.Context, req *billingv1.GetEntitlementsRequest) (*billingv1.GetEntitlementsResponse, error) {
	b.mu.Lock()
	if b.down {
		b.mu.Unlock()
		return nil, status.Error(codes.Unavailable, "billing is down")
	}
	b.lookups++
	e := &billingv1.Entitlements{TenantId: req.GetTenantId(), Features: b.features[req.GetTenantId()], Revision: b.revisions[req.GetTenantId()]}
	during := b.during
	b.mu.Unlock()
	if during != nil {
		during()
	}
	return &billingv1.GetEntitlementsResponse{Entitlements: e}, nil
}

func (b *billingStandIn) ListEntitlementChanges(_ context.Context, req *billingv1.ListEntitlementChangesRequest) (*billingv1.ListEntitlementChangesResponse, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down {
		return nil, status.Error(codes.Unavailable, "billing is down")
	}
	out := &billingv1.ListEntitlementChangesResponse{Revision: b.revision, DefaultPlanId: b.defaultPlan}
	if req.GetCurrentOnly() {
		return out, nil
	}
	for tenant, rev := range b.revisions {
		if rev > req.GetAfterRevision() {
			out.Changed = append(out.Changed, &billingv1.Entitlements{TenantId: tenant, Features: b.features[tenant], Revision: rev})
		}
	}
	return out, nil
}

func newCache(t *testing.T) (*entitlements.Cache, *billingStandIn) {
	t.Helper()
	b := &billingStandIn{features: map[string][]string{}, revisions: map[string]int64{}, defaultPlan: "free"}
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&billingv1.BillingService_ServiceDesc, b)
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	return entitlements.NewCache(billingv1.NewBillingServiceClient(conn), logging.Discard()), b
}

func refused(t *testing.T, err error, feature string) {
	t.Helper()
	e, ok := apierr.From(err)
	require.True(t, ok, "%v", err)
	require.Equal(t, codes.PermissionDenied, e.GRPCCode)
	require.Equal(t, entitlements.CodeFeatureNotEnabled, e.Code)
	require.Equal(t, feature, e.Details["feature_key"])
}

func TestCacheAsksOncePerTenant(t *testing.T) {
	c, b := newCache(t)
	ctx := context.Background()
	b.set("t1", entitlements.RetrievalLocal, entitlements.TTS)
	require.NoError(t, c.Sync(ctx))
	for range 10 {
		require.NoError(t, c.Require(ctx, "t1", entitlements.TTS))
		refused(t, c.Require(ctx, "t1", entitlements.AuditAccess), entitlements.AuditAccess)
	}
	require.Equal(t, 1, b.lookups)
}

func TestCacheFollowsChanges(t *testing.T) {
	c, b := newCache(t)
	ctx := context.Background()
	require.NoError(t, c.Sync(ctx))
	b.set("t1", entitlements.RetrievalLocal)
	refused(t, c.Require(ctx, "t1", entitlements.TTS), entitlements.TTS)

	b.set("t1", entitlements.RetrievalLocal, entitlements.TTS) // an upgrade
	b.set("t2", entitlements.TTS)                              // a tenant the cache never saw
	require.NoError(t, c.Sync(ctx))
	require.NoError(t, c.Require(ctx, "t1", entitlements.TTS))
	require.Equal(t, 1, b.lookups, "the change came with the sync, not from another lookup")
	require.NoError(t, c.Require(ctx, "t2", entitlements.TTS))
	require.Equal(t, 2, b.lookups)

	// Billing with another default plan: everything is asked again.
	b.mu.Lock()
	b.defaultPlan = "pro"
	b.mu.Unlock()
	require.NoError(t, c.Sync(ctx))
	require.NoError(t, c.Require(ctx, "t1", entitlements.TTS))
	require.Equal(t, 3, b.lookups)
}

// A lookup that overlaps a sync is answered but not kept: the change the sync applied
// may be newer than what the lookup read.
func TestLookupOverlappingAChangeIsNotKept(t *testing.T) {
	c, b := newCache(t)
	ctx := context.Background()
	require.NoError(t, c.Sync(ctx))
	b.set("t1", entitlements.RetrievalLocal)
	b.during = func() {
		b.during = nil
		b.set("t1", entitlements.RetrievalLocal, entitlements.TTS)
		require.NoError(t, c.Sync(ctx)) // t1 is not cached yet: the sync skips it
	}
	refused(t, c.Require(ctx, "t1", entitlements.TTS), entitlements.TTS) // what the lookup read
	require.NoError(t, c.Require(ctx, "t1", entitlements.TTS), "the next check asks again and sees the upgrade")
}

func TestKnownTenantsOutliveABillingOutage(t *testing.T) {
	c, b := newCache(t)
	ctx := context.Background()
	b.set("t1", entitlements.TTS)
	require.NoError(t, c.Require(ctx, "t1", entitlements.TTS))
	b.mu.Lock()
	b.down = true
	b.mu.Unlock()
	require.Error(t, c.Sync(ctx))
	require.NoError(t, c.Require(ctx, "t1", entitlements.TTS))
	err := c.Require(ctx, "t2", entitlements.TTS)
	require.Equal(t, codes.Unavailable, status.Code(errors.Unwrap(err)), "a new tenant cannot be checked: %v", err)
}

func TestStatic(t *testing.T) {
	require.NoError(t, entitlements.Everything.Require(context.Background(), "any", entitlements.HighQuotaTier))
	refused(t, entitlements.Static{entitlements.TTS}.Require(context.Background(), "any", entitlements.AuditAccess), entitlements.AuditAccess)
	require.True(t, entitlements.Known(entitlements.ForProvider("gcp_vertex")))
}
