package failover_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	failoverv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/failover/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redistest"
	"github.com/nexusrag/nexusrag/services/failover"
)

// peer records the freezes a promotion asks of another region.
type peer struct {
	failoverv1.FailoverServiceClient
	mu     sync.Mutex
	frozen []bool
}

func (p *peer) FreezeForFailover(_ context.Context, in *failoverv1.FreezeForFailoverRequest, _ ...grpc.CallOption) (*failoverv1.FreezeForFailoverResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = append(p.frozen, in.GetFreeze())
	return &failoverv1.FreezeForFailoverResponse{}, nil
}

func code(err error) string {
	e, _ := apierr.From(err)
	if e == nil {
		return ""
	}
	return e.Code
}

// TestFailedPromotionRollsBack: promoting a region whose database is no standby fails at
// the precheck with the peer frozen; a rollback token unfreezes the peer.
func TestFailedPromotionRollsBack(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, failover.Migrations())
	rdb, prefix := redistest.New(t)
	cfg := config(t)
	cfg.RegionID, cfg.RegionRole, cfg.FailoverEnabled, cfg.PlatformAdminTenants, cfg.TokenTTLSeconds = "b", "secondary", true, []string{"t-op"}, 60
	a := &peer{}
	srv, err := failover.NewServer(cfg, pool.Config().ConnString(), failover.NewStore(pool), nil, &audittest.Recorder{}, logging.Discard())
	require.NoError(t, err)
	srv.WithRedis(rdb, prefix, map[string]failoverv1.FailoverServiceClient{"a": a})
	op := principal.With(context.Background(), principal.Principal{TenantID: "t-op", KeyID: "k", Role: apiv1.Role_ROLE_ADMIN})
	token := func(purpose string) string {
		res, err := srv.RequestFailoverToken(op, &failoverv1.RequestFailoverTokenRequest{Purpose: purpose, Reason: "drill"})
		require.NoError(t, err)
		return res.GetToken()
	}

	_, err = srv.RequestFailoverToken(principal.With(context.Background(), principal.Principal{TenantID: "t-x", Role: apiv1.Role_ROLE_ADMIN}),
		&failoverv1.RequestFailoverTokenRequest{Purpose: "promote", Reason: "r"})
	require.Equal(t, apierr.CodeForbidden, code(err), "a tenant's admin is not the platform's")
	_, err = srv.RollbackFailover(op, &failoverv1.RollbackFailoverRequest{Token: token("rollback"), Reason: "r"})
	require.Equal(t, failover.CodeRollbackRefused, code(err), "nothing failed")
	_, err = srv.PromoteRegion(op, &failoverv1.PromoteRegionRequest{TargetRegion: "b", Token: token("rollback"), Reason: "r"})
	require.Equal(t, failover.CodeTokenInvalid, code(err), "a rollback token does not promote")

	_, err = srv.PromoteRegion(op, &failoverv1.PromoteRegionRequest{TargetRegion: "b", Token: token("promote"), Reason: "drill"})
	require.Equal(t, failover.CodeFailoverFailed, code(err))
	require.ErrorContains(t, err, "not a standby")
	st, err := srv.GetFailoverStatus(op, &failoverv1.GetFailoverStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "failed", st.GetState())
	require.False(t, st.GetWritesAllowed(), "a failed failover keeps writes frozen")
	require.Equal(t, []bool{true}, a.frozen)

	res, err := srv.RollbackFailover(op, &failoverv1.RollbackFailoverRequest{Token: token("rollback"), Reason: "back to a"})
	require.NoError(t, err)
	require.Equal(t, "rolled_back", res.GetStatus().GetState())
	require.Equal(t, []bool{true, false}, a.frozen, "the peer takes writes again")
	var events []string
	for _, tr := range res.GetStatus().GetRecentTransitions() {
		events = append(events, tr.GetEvent())
	}
	require.Equal(t, []string{"rollback_succeeded", "rollback_requested", "precheck_failed", "writes_frozen", "promote_requested"}, events,
		"every transition, newest first")
}

// TestARegionFrozenForOneFailoverRefusesAnother: the old primary's row, locked while it
// changes, keeps two regions from both taking over from it.
func TestARegionFrozenForOneFailoverRefusesAnother(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t, failover.Migrations())
	cfg := config(t)
	cfg.RegionID, cfg.RegionRole = "a", "primary"
	srv, err := failover.NewServer(cfg, pool.Config().ConnString(), failover.NewStore(pool), nil, &audittest.Recorder{}, logging.Discard())
	require.NoError(t, err)
	ctx := context.Background()
	freeze := func(on bool, by string) error {
		_, err := srv.FreezeForFailover(ctx, &failoverv1.FreezeForFailoverRequest{Freeze: on, ByRegion: by, Reason: "r"})
		return err
	}
	require.NoError(t, freeze(true, "b"))
	require.NoError(t, freeze(true, "b"), "the same failover again is answered as it is")
	require.Equal(t, failover.CodeInProgress, code(freeze(true, "c")))
	require.Equal(t, failover.CodeInProgress, code(freeze(false, "c")), "nor may c unfreeze b's freeze")
	st, err := srv.GetFailoverStatus(ctx, &failoverv1.GetFailoverStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, "secondary", st.GetRole())
	require.Contains(t, st.GetWritesRefusedReason(), "region b is being promoted")
	require.NoError(t, freeze(false, "b"))
	st, err = srv.GetFailoverStatus(ctx, &failoverv1.GetFailoverStatusRequest{})
	require.NoError(t, err)
	require.True(t, st.GetWritesAllowed())
	require.NoError(t, freeze(true, "c"), "free again")
	require.Equal(t, apierr.CodeInvalidArgument, code(freeze(true, "a")))
}
