package maintenance_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/redistest"
)

func code(err error) string {
	e, _ := apierr.From(err)
	if e == nil {
		return ""
	}
	return e.Code
}

func TestRunNowLocksTheTaskAcrossReplicas(t *testing.T) {
	rdb, prefix := redistest.New(t)
	rec := &audittest.Recorder{}
	entered, release := make(chan struct{}), make(chan struct{})
	var runs atomic.Int32
	task := maintenance.Task{Name: "prune_audit", Run: func(ctx context.Context) (maintenance.Result, error) {
		if runs.Add(1) == 1 {
			close(entered)
			<-release
		}
		return maintenance.Result{Affected: 7, Detail: "pruned"}, nil
	}}
	a := maintenance.NewRunner("governance", rdb, prefix, rec, logging.Discard(), task)
	b := maintenance.NewRunner("governance", rdb, prefix, rec, logging.Discard(), task)

	done := make(chan error)
	go func() { _, err := a.RunNow(context.Background(), "prune_audit", "demand"); done <- err }()
	<-entered
	_, err := b.OnDemand(context.Background(), "prune_audit")
	require.Equal(t, maintenance.CodeTaskRunning, code(err), "one replica at a time")
	close(release)
	require.NoError(t, <-done)

	run, err := b.OnDemand(context.Background(), "prune_audit")
	require.NoError(t, err, "the lock is released after the run")
	require.Equal(t, "governance", run.GetOwner())
	require.EqualValues(t, 7, run.GetAffected())
	require.Equal(t, "pruned", run.GetDetail())
	require.False(t, run.GetFinishedAt().AsTime().Before(run.GetStartedAt().AsTime()))
	require.Equal(t, []string{audit.TypeMaintenanceRun, audit.TypeMaintenanceRun}, rec.Types())

	_, err = a.OnDemand(context.Background(), "vacuum")
	require.Equal(t, apierr.CodeInvalidArgument, code(err))
	_, err = a.OnDemand(context.Background(), "prune_usage")
	require.Equal(t, apierr.CodeInvalidArgument, code(err), "billing's task, not governance's")
	var none *maintenance.Runner
	_, err = none.OnDemand(context.Background(), "prune_audit")
	require.Equal(t, maintenance.CodeTaskUnavailable, code(err))
}

func TestTickRunsEachTaskOncePerPeriod(t *testing.T) {
	rdb, prefix := redistest.New(t)
	var runs atomic.Int32
	failing := maintenance.Task{Name: "prune_usage", Run: func(context.Context) (maintenance.Result, error) {
		return maintenance.Result{}, errors.New("database down")
	}}
	ok := maintenance.Task{Name: "cleanup_actions", Run: func(context.Context) (maintenance.Result, error) {
		runs.Add(1)
		return maintenance.Result{}, nil
	}}
	a := maintenance.NewRunner("x", rdb, prefix, &audittest.Recorder{}, logging.Discard(), ok, failing)
	b := maintenance.NewRunner("x", rdb, prefix, &audittest.Recorder{}, logging.Discard(), ok, failing)
	require.Equal(t, []string{"cleanup_actions", "prune_usage"}, a.Tick(context.Background(), time.Hour))
	require.Empty(t, b.Tick(context.Background(), time.Hour), "the other replica has this period")
	require.Empty(t, a.Tick(context.Background(), time.Hour))
	require.EqualValues(t, 1, runs.Load())
	ttl, err := rdb.TTL(context.Background(), prefix+"maintenance:period:cleanup_actions").Result()
	require.NoError(t, err)
	require.InDelta(t, time.Hour.Seconds(), ttl.Seconds(), 5, "the claim lapses with the period")
}
