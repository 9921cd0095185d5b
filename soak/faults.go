package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// fault is one injected failure and when it happened, from the start of the load.
type fault struct {
	at   time.Duration
	what string
	err  error
}

// redisOutage is how long Redis stays down when it is restarted; workerOutage how long
// the second worker stays dead.
const (
	redisOutage  = 2 * time.Second
	workerOutage = time.Second
)

// faultSchedule injects a fault every interval until ctx ends, in turn: Redis killed and
// started again empty (no persistence: the queue's streams are gone), every Postgres
// backend of the soak's database terminated, the second ingest worker killed (SIGKILL)
// and started again.
func (p *platform) faultSchedule(ctx context.Context, start time.Time, every time.Duration) []fault {
	kinds := []func(context.Context) (string, error){p.restartRedis, p.terminateBackends, p.killWorker}
	var out []fault
	tick := time.NewTicker(every)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return out
		case <-tick.C:
		}
		if d, ok := ctx.Deadline(); ctx.Err() != nil || ok && time.Until(d) < every/4 {
			return out // the load ends before the fault could show
		}
		at := time.Since(start)
		// A fault once begun is carried out whole (Redis and the worker started again)
		// even when the load ends meanwhile.
		what, err := kinds[i%len(kinds)](context.WithoutCancel(ctx))
		out = append(out, fault{at: at, what: what, err: err})
	}
}

func (p *platform) restartRedis(context.Context) (string, error) {
	p.redis.Kill()
	time.Sleep(redisOutage)
	return fmt.Sprintf("Redis killed, started again empty after %s", redisOutage), p.redis.Start()
}

func (p *platform) terminateBackends(ctx context.Context) (string, error) {
	admin, err := pgx.Connect(ctx, p.env.AdminURL)
	if err != nil {
		return "Postgres backends terminated", err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var n int
	err = admin.QueryRow(ctx, `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()) t`, p.env.DBName).Scan(&n)
	return fmt.Sprintf("%d Postgres backends terminated", n), err
}

func (p *platform) killWorker(context.Context) (string, error) {
	p.mu.Lock()
	w := p.worker
	p.worker = nil
	p.mu.Unlock()
	if w != nil {
		w.Kill()
	}
	time.Sleep(workerOutage)
	return fmt.Sprintf("ingest worker killed (SIGKILL), started again after %s", workerOutage), p.startWorker()
}
