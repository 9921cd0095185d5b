package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/quota"
	"github.com/nexusrag/nexusrag/pkg/redisscan"
)

// Usage keeps the request counters: the gateway counts in Redis, Rollup copies the
// counts into Postgres (billing.usage_hourly) and rebuilds them in a Redis that lost its
// data. What a Redis loss can cost is what was counted after the last rollup: at most one
// USAGE_ROLLUP_INTERVAL of requests.
type Usage struct {
	store     *Store
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
	now       func() time.Time
	audit     Recorder
	log       *slog.Logger
	recorded  *audit.Sampler
}

// NewUsage returns the counters of the Redis rdb (keys under prefix); counts older
// than retention are deleted from Postgres. now is the clock of the periods.
func NewUsage(store *Store, rdb redis.UniversalClient, prefix string, retention time.Duration, now func() time.Time, rec Recorder, log *slog.Logger) *Usage {
	if now == nil {
		now = time.Now
	}
	return &Usage{store: store, rdb: rdb, prefix: prefix, retention: retention, now: now, audit: rec, log: log,
		recorded: audit.NewSampler(time.Hour, 100_000)}
}

// Run rolls up every interval until ctx ends.
func (u *Usage) Run(ctx context.Context, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := u.Rollup(ctx); err != nil && ctx.Err() == nil {
			u.log.WarnContext(ctx, "usage rollup failed; the next one catches up", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Rollup rebuilds the counters of a Redis that lost them, copies the counts of the
// current and the previous hour into Postgres (the prune_usage task forgets counts past
// retention).
func (u *Usage) Rollup(ctx context.Context) error {
	now := u.now()
	if err := u.rebuild(ctx, now); err != nil {
		return err
	}
	for _, hour := range []time.Time{quota.HourStart(now).Add(-time.Hour), quota.HourStart(now)} {
		counts, err := u.scanHour(ctx, hour)
		if err != nil {
			return err
		}
		if err := u.store.RecordUsage(ctx, counts); err != nil {
			return err
		}
		for _, c := range counts {
			if ok, _ := u.recorded.Allow(c.tenant, now); ok {
				u.audit.Record(ctx, audit.Event{Type: audit.TypeUsageRecorded, Outcome: audit.OutcomeSuccess, TenantID: c.tenant,
					ActorType: audit.ActorSystem, ResourceType: "tenant", ResourceID: c.tenant,
					Metadata: map[string]any{"hour": c.hour.Format(time.RFC3339), "requests": c.requests}})
			}
		}
	}
	if _, err := u.store.ForgetWebhooksBefore(ctx, now.Add(-finishedRetention)); err != nil {
		return fmt.Errorf("forget sent webhook events: %w", err)
	}
	return nil
}

// rebuild adds Postgres's counts to the counters when Redis lost its data: the epoch
// key is then missing. One process wins the epoch (SET NX) and rebuilds; requests
// counted since the loss are kept, since the rebuild adds to them.
func (u *Usage) rebuild(ctx context.Context, now time.Time) error {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	won, err := u.rdb.SetNX(ctx, quota.EpochKey(u.prefix), hex.EncodeToString(b), 0).Result()
	if err != nil || !won {
		return err
	}
	usage, err := u.store.UsageAt(ctx, now)
	if err != nil {
		_ = u.rdb.Del(ctx, quota.EpochKey(u.prefix)).Err() // the next rollup tries again
		return err
	}
	pipe := u.rdb.Pipeline()
	for _, t := range usage {
		k := quota.KeysAt(u.prefix, t.tenant, now)
		for _, c := range []struct {
			key string
			n   int64
			ttl time.Duration
		}{{k.Hour, t.hour, k.HourTTL}, {k.Day, t.day, k.DayTTL}, {k.Month, t.month, k.MonthTTL}} {
			if c.n > 0 {
				pipe.IncrBy(ctx, c.key, c.n)
				pipe.PExpire(ctx, c.key, c.ttl)
			}
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return fmt.Errorf("rebuild quota counters: %w", err)
	}
	if len(usage) > 0 {
		u.log.WarnContext(ctx, "quota counters rebuilt from Postgres (Redis had lost them)", "tenants", len(usage))
	}
	return nil
}

// scanHour reads every tenant's counter of hour.
func (u *Usage) scanHour(ctx context.Context, hour time.Time) ([]hourCount, error) {
	suffix := strings.TrimPrefix(quota.KeysAt(u.prefix, "", hour).Hour, u.prefix+"quota:{}")
	pattern := u.prefix + "quota:{*}" + suffix
	var out []hourCount
	keys, err := redisscan.Keys(ctx, u.rdb, pattern)
	if err != nil {
		return nil, fmt.Errorf("scan quota counters: %w", err)
	}
	for len(keys) > 0 {
		batch := keys[:min(len(keys), 500)]
		keys = keys[len(batch):]
		vals, err := u.rdb.MGet(ctx, batch...).Result()
		if err != nil {
			return nil, fmt.Errorf("read quota counters: %w", err)
		}
		for i, v := range vals {
			s, ok := v.(string)
			n, err := strconv.ParseInt(s, 10, 64)
			if !ok || err != nil {
				continue
			}
			tenant := strings.TrimSuffix(strings.TrimPrefix(batch[i], u.prefix+"quota:{"), "}"+suffix)
			out = append(out, hourCount{tenant: tenant, hour: hour, requests: n})
		}
	}
	return out, nil
}

// Used is what tenant used today and this month: the live counters, or Postgres's when
// Redis cannot answer (the larger of the two: Redis may have lost its data).
func (u *Usage) Used(ctx context.Context, tenant string) (day, month int64, err error) {
	now := u.now()
	live, rerr := quota.Read(ctx, u.rdb, u.prefix, tenant, now)
	days, err := u.store.UsageBuckets(ctx, tenant, quota.Day, quota.DayStart(now), quota.DayStart(now).AddDate(0, 0, 1))
	if err != nil {
		return 0, 0, err
	}
	months, err := u.store.UsageBuckets(ctx, tenant, quota.Month, quota.MonthStart(now), quota.MonthStart(now).AddDate(0, 1, 0))
	if err != nil {
		return 0, 0, err
	}
	day, month = days[quota.DayStart(now)], months[quota.MonthStart(now)]
	if rerr != nil {
		u.log.WarnContext(ctx, "quota counters unreadable; answering from the last rollup", "error", rerr)
		return day, month, nil
	}
	return max(day, live.Day), max(month, live.Month), nil
}

// PruneTask is the prune_usage maintenance task: it deletes the hourly counts older than
// USAGE_COUNTER_RETENTION_DAYS.
func (u *Usage) PruneTask() maintenance.Task {
	return maintenance.Task{Name: "prune_usage", Run: func(ctx context.Context) (maintenance.Result, error) {
		n, err := u.store.ForgetUsageBefore(ctx, u.now().Add(-u.retention))
		return maintenance.Result{Affected: n, Detail: fmt.Sprintf("deleted hourly usage counts older than USAGE_COUNTER_RETENTION_DAYS (%d days)",
			int(u.retention.Hours()/24))}, err
	}}
}
