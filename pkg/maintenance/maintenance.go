// Package maintenance runs a service's housekeeping tasks (pruning what its retention knobs
// expire) on a schedule and on demand, one replica at a time: a Redis lock per task keeps
// two replicas from running the same task at once, and a claim per period makes one
// replica run each scheduled round.
package maintenance

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/redislock"
)

// Codes of maintenance runs.
const (
	CodeTaskRunning     = "MAINTENANCE_TASK_RUNNING"
	CodeTaskUnavailable = "MAINTENANCE_TASK_UNAVAILABLE"
)

// Tasks, by the service that owns each.
var Owners = map[string]string{
	"prune_idempotency":       "gateway",
	"prune_audit":             "governance",
	"cleanup_actions":         "ui",
	"prune_usage":             "billing",
	"backup_create_scheduled": "failover",
	"backup_prune_retention":  "failover",
	"restore_drill_scheduled": "failover",
}

// Names lists the tasks, sorted.
func Names() []string {
	out := make([]string, 0, len(Owners))
	for n := range Owners {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// CheckTask refuses a name that is not a task (400 naming the field).
func CheckTask(name string) error {
	if _, ok := Owners[name]; !ok {
		return apierr.InvalidArgument("task", "task must be one of "+strings.Join(Names(), ", "))
	}
	return nil
}

// Result is what a task did.
type Result struct {
	Affected int64
	Detail   string
}

// Task is one task of a service.
type Task struct {
	Name string
	Run  func(ctx context.Context) (Result, error)
}

// Recorder audits runs.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Runner runs one service's tasks.
type Runner struct {
	owner  string
	tasks  map[string]Task
	rdb    redis.UniversalClient
	prefix string
	audit  Recorder
	log    *slog.Logger
	// LockTTL bounds how long a crashed runner keeps a task locked.
	LockTTL time.Duration
}

// NewRunner returns the runner of owner's tasks.
func NewRunner(owner string, rdb redis.UniversalClient, prefix string, rec Recorder, log *slog.Logger, tasks ...Task) *Runner {
	r := &Runner{owner: owner, tasks: map[string]Task{}, rdb: rdb, prefix: prefix, audit: rec, log: log, LockTTL: 10 * time.Minute}
	for _, t := range tasks {
		r.tasks[t.Name] = t
	}
	return r
}

// RunNow runs a task at once, unless another replica is running it
// (MAINTENANCE_TASK_RUNNING). trigger is "demand" or "schedule" (audited).
func (r *Runner) RunNow(ctx context.Context, name, trigger string) (*apiv1.MaintenanceRun, error) {
	if err := CheckTask(name); err != nil {
		return nil, err
	}
	t, ok := r.tasks[name]
	if !ok {
		return nil, apierr.New(codes.InvalidArgument, apierr.CodeInvalidArgument,
			fmt.Sprintf("task %s belongs to the %s service, not %s", name, Owners[name], r.owner), "field", "task")
	}
	release, got, err := redislock.Acquire(ctx, r.rdb, r.prefix+"maintenance:lock:"+name, r.LockTTL)
	if err != nil {
		return nil, fmt.Errorf("lock maintenance task %s: %w", name, err)
	}
	if !got {
		return nil, apierr.New(codes.FailedPrecondition, CodeTaskRunning, fmt.Sprintf("task %s is running on another replica; try again when it has finished", name), "task", name)
	}
	defer func() {
		if err := release(); err != nil {
			r.log.Warn("maintenance lock not released; it lapses by itself", "task", name, "err", err)
		}
	}()
	run := &apiv1.MaintenanceRun{Task: name, Owner: r.owner, StartedAt: timestamppb.Now()}
	res, err := t.Run(ctx)
	run.FinishedAt, run.Affected, run.Detail = timestamppb.Now(), res.Affected, res.Detail
	outcome := audit.OutcomeSuccess
	if err != nil {
		outcome = audit.OutcomeFailure
	}
	r.audit.Record(ctx, audit.Event{Type: audit.TypeMaintenanceRun, Outcome: outcome, ActorType: actorOf(trigger), ResourceType: "maintenance_task", ResourceID: name,
		Metadata: map[string]any{"trigger": trigger, "affected": res.Affected}})
	if err != nil {
		return nil, fmt.Errorf("maintenance task %s: %w", name, err)
	}
	return run, nil
}

func actorOf(trigger string) string {
	if trigger == "schedule" {
		return audit.ActorSystem
	}
	return "" // the caller's key
}

// Schedule runs every task once per period until ctx ends (Tick every minute, or every
// period if shorter).
func (r *Runner) Schedule(ctx context.Context, period time.Duration) {
	tick := time.NewTicker(min(period, time.Minute))
	defer tick.Stop()
	for {
		r.Tick(ctx, period)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Tick runs each task whose period no replica has claimed yet: the claim is a SET NX that
// expires with the period, so one replica runs each task per period. It returns the
// tasks it ran.
func (r *Runner) Tick(ctx context.Context, period time.Duration) []string {
	names := make([]string, 0, len(r.tasks))
	for n := range r.tasks {
		names = append(names, n)
	}
	slices.Sort(names)
	var ran []string
	for _, n := range names {
		claimed, err := r.rdb.SetNX(ctx, r.prefix+"maintenance:period:"+n, r.owner, period).Result()
		if err != nil || !claimed {
			continue // Redis down, or another replica has this period: the next tick looks again
		}
		ran = append(ran, n)
		if run, err := r.RunNow(ctx, n, "schedule"); err != nil && ctx.Err() == nil {
			r.log.Warn("scheduled maintenance task failed; the next period retries", "task", n, "err", err)
		} else if run != nil && run.GetAffected() > 0 {
			r.log.Info("maintenance task ran", "task", n, "affected", run.GetAffected(), "detail", run.GetDetail())
		}
	}
	return ran
}

// OnDemand runs a task for a service's Run*Maintenance call (trigger "demand"); a process
// set up without a runner answers that maintenance is unavailable.
func (r *Runner) OnDemand(ctx context.Context, task string) (*apiv1.MaintenanceRun, error) {
	if r == nil {
		return nil, apierr.New(codes.Unavailable, CodeTaskUnavailable, "maintenance is not set up in this process", "task", task)
	}
	return r.RunNow(ctx, task, "demand")
}
