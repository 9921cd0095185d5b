package billing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexusrag/nexusrag/pkg/quota"
)

// Store holds the billing schema's tables.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// tenantRecord is what billing keeps about a tenant; the zero value (no plan, no
// overrides, revision 0) is a tenant it keeps nothing about.
type tenantRecord struct {
	tenantID  string
	planID    string // "": the default plan
	revision  int64
	updatedAt time.Time
	overrides map[string]override
	quota     quotaSettings
}

// quotaSettings are a tenant's own quota values; nil ones are its plan's.
type quotaSettings struct {
	daily, monthly *int64
	softCapRatio   *float64
	hardCap        *bool
}

func (q quotaSettings) any() bool {
	return q.daily != nil || q.monthly != nil || q.softCapRatio != nil || q.hardCap != nil
}

type override struct {
	enabled bool
	config  []byte
}

// Tenant returns what is kept about tenant.
func (s *Store) Tenant(ctx context.Context, tenant string) (tenantRecord, error) {
	recs, err := s.tenants(ctx, s.pool, `WHERE t.tenant_id = $1`, tenant)
	if err != nil || len(recs) == 0 {
		return tenantRecord{tenantID: tenant, overrides: map[string]override{}}, err
	}
	return recs[0], nil
}

// eventOf builds the webhook event of a change from the tenant's new record (nil: none).
type eventOf func(tenantRecord) *outboxEvent

// SetPlan assigns planID to tenant.
func (s *Store) SetPlan(ctx context.Context, tenant, planID string, event eventOf) (tenantRecord, error) {
	return s.change(ctx, tenant, event, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE billing.tenants SET plan_id = $2 WHERE tenant_id = $1`, tenant, planID)
		return err
	})
}

// SetOverride grants or withdraws feature for tenant; enabled nil removes the override.
func (s *Store) SetOverride(ctx context.Context, tenant, feature string, enabled *bool, config []byte, event eventOf) (tenantRecord, error) {
	return s.change(ctx, tenant, event, func(tx pgx.Tx) error {
		if enabled == nil {
			_, err := tx.Exec(ctx, `DELETE FROM billing.feature_overrides WHERE tenant_id = $1 AND feature_key = $2`, tenant, feature)
			return err
		}
		if config == nil {
			config = []byte("{}")
		}
		_, err := tx.Exec(ctx, `INSERT INTO billing.feature_overrides (tenant_id, feature_key, enabled, config_json) VALUES ($1, $2, $3, $4)
			ON CONFLICT (tenant_id, feature_key) DO UPDATE SET enabled = EXCLUDED.enabled, config_json = EXCLUDED.config_json, updated_at = now()`,
			tenant, feature, *enabled, config)
		return err
	})
}

// SetQuota changes the quota values q sets (the others keep theirs).
func (s *Store) SetQuota(ctx context.Context, tenant string, q quotaSettings, event eventOf) (tenantRecord, error) {
	return s.change(ctx, tenant, event, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `UPDATE billing.tenants SET
				daily_requests_limit = coalesce($2, daily_requests_limit), monthly_requests_limit = coalesce($3, monthly_requests_limit),
				soft_cap_ratio = coalesce($4, soft_cap_ratio), hard_cap_enabled = coalesce($5, hard_cap_enabled)
			WHERE tenant_id = $1`, tenant, q.daily, q.monthly, q.softCapRatio, q.hardCap)
		return err
	})
}

// change runs apply on tenant's row (created when missing) under a new revision. The
// advisory lock makes revisions commit in the order they are taken, so a cache that has
// seen revision r never misses a change numbered below r. The change's webhook event, if
// any, is written to the outbox in the same transaction.
func (s *Store) change(ctx context.Context, tenant string, event eventOf, apply func(pgx.Tx) error) (tenantRecord, error) {
	var rec tenantRecord
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('billing.revisions'))`); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO billing.tenants (tenant_id, revision) VALUES ($1, nextval('billing.revisions'))
			ON CONFLICT (tenant_id) DO UPDATE SET revision = EXCLUDED.revision, updated_at = now()`, tenant); err != nil {
			return err
		}
		if err := apply(tx); err != nil {
			return err
		}
		recs, err := s.tenants(ctx, tx, `WHERE t.tenant_id = $1`, tenant)
		if err != nil {
			return err
		}
		if len(recs) != 1 {
			return errors.New("tenant row vanished")
		}
		rec = recs[0]
		if event == nil {
			return nil
		}
		if ev := event(rec); ev != nil {
			_, err = enqueue(ctx, tx, *ev)
		}
		return err
	})
	if err != nil {
		return tenantRecord{}, fmt.Errorf("change tenant %s: %w", tenant, err)
	}
	return rec, nil
}

// maxChanges bounds an answer of Changes.
const maxChanges = 500

// Changes returns the tenants changed after revision (oldest first, at most maxChanges),
// the revision the answer covers and whether there are more; currentOnly returns the
// current revision alone.
func (s *Store) Changes(ctx context.Context, after int64, currentOnly bool) ([]tenantRecord, int64, bool, error) {
	if currentOnly {
		var rev int64
		err := s.pool.QueryRow(ctx, `SELECT coalesce(max(revision), 0) FROM billing.tenants`).Scan(&rev)
		return nil, rev, false, err
	}
	recs, err := s.tenants(ctx, s.pool, `WHERE t.revision > $1 ORDER BY t.revision LIMIT `+fmt.Sprint(maxChanges+1), after)
	if err != nil {
		return nil, 0, false, err
	}
	more := len(recs) > maxChanges
	if more {
		recs = recs[:maxChanges]
	}
	rev := after
	if n := len(recs); n > 0 {
		rev = recs[n-1].revision
	}
	return recs, rev, more, nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// tenants reads tenants' rows with their overrides; where filters (and orders) t.
func (s *Store) tenants(ctx context.Context, q querier, where string, args ...any) ([]tenantRecord, error) {
	rows, err := q.Query(ctx, `SELECT t.tenant_id, coalesce(t.plan_id, ''), t.revision, t.updated_at,
			t.daily_requests_limit, t.monthly_requests_limit, t.soft_cap_ratio, t.hard_cap_enabled,
			coalesce(o.feature_key, ''), coalesce(o.enabled, false), coalesce(o.config_json::text, '{}')
		FROM (SELECT * FROM billing.tenants t `+where+`) t
		LEFT JOIN billing.feature_overrides o ON o.tenant_id = t.tenant_id
		ORDER BY t.revision, o.feature_key`, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []tenantRecord
	for rows.Next() {
		var r tenantRecord
		var key, config string
		var enabled bool
		if err := rows.Scan(&r.tenantID, &r.planID, &r.revision, &r.updatedAt,
			&r.quota.daily, &r.quota.monthly, &r.quota.softCapRatio, &r.quota.hardCap, &key, &enabled, &config); err != nil {
			return nil, err
		}
		if n := len(out); n == 0 || out[n-1].tenantID != r.tenantID {
			r.overrides = map[string]override{}
			out = append(out, r)
		}
		if key != "" {
			out[len(out)-1].overrides[key] = override{enabled: enabled, config: []byte(config)}
		}
	}
	return out, rows.Err()
}

// hourCount is the requests counted for a tenant in one UTC hour.
type hourCount struct {
	tenant   string
	hour     time.Time
	requests int64
}

// RecordUsage stores hourly counts, keeping the larger of the stored and the given count
// (Redis counters only grow within their hour; a lower one is a Redis that lost data).
func (s *Store) RecordUsage(ctx context.Context, counts []hourCount) error {
	if len(counts) == 0 {
		return nil
	}
	tenants, hours, requests := make([]string, len(counts)), make([]time.Time, len(counts)), make([]int64, len(counts))
	for i, c := range counts {
		tenants[i], hours[i], requests[i] = c.tenant, c.hour, c.requests
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO billing.usage_hourly (tenant_id, hour, requests)
		SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::bigint[])
		ON CONFLICT (tenant_id, hour) DO UPDATE SET requests = GREATEST(billing.usage_hourly.requests, EXCLUDED.requests)`,
		tenants, hours, requests)
	if err != nil {
		return fmt.Errorf("record usage: %w", err)
	}
	return nil
}

// periodUsage is what tenants used in the hour, day and month holding an instant.
type periodUsage struct {
	tenant           string
	hour, day, month int64
}

// UsageAt returns, for every tenant with usage in t's month, its hour, day and month
// totals at t.
func (s *Store) UsageAt(ctx context.Context, t time.Time) ([]periodUsage, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id,
			coalesce(sum(requests) FILTER (WHERE hour = $1), 0),
			coalesce(sum(requests) FILTER (WHERE hour >= $2), 0),
			sum(requests)
		FROM billing.usage_hourly WHERE hour >= $3 AND hour < $4 GROUP BY tenant_id`,
		quota.HourStart(t), quota.DayStart(t), quota.MonthStart(t), quota.MonthStart(t).AddDate(0, 1, 0))
	if err != nil {
		return nil, fmt.Errorf("usage at %s: %w", t.Format(time.RFC3339), err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (periodUsage, error) {
		var u periodUsage
		err := r.Scan(&u.tenant, &u.hour, &u.day, &u.month)
		return u, err
	})
}

// UsageBuckets sums a tenant's usage per UTC hour, day or month ("hour", "day", "month")
// from from (inclusive) to to (exclusive), keyed by the bucket's start.
func (s *Store) UsageBuckets(ctx context.Context, tenant, period string, from, to time.Time) (map[time.Time]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT date_trunc($2, hour AT TIME ZONE 'UTC'), sum(requests)
		FROM billing.usage_hourly WHERE tenant_id = $1 AND hour >= $3 AND hour < $4 GROUP BY 1`, tenant, period, from, to)
	if err != nil {
		return nil, fmt.Errorf("usage of %s: %w", tenant, err)
	}
	defer rows.Close()
	out := map[time.Time]int64{}
	for rows.Next() {
		var start time.Time
		var n int64
		if err := rows.Scan(&start, &n); err != nil {
			return nil, err
		}
		out[time.Date(start.Year(), start.Month(), start.Day(), start.Hour(), 0, 0, 0, time.UTC)] = n
	}
	return out, rows.Err()
}

// ForgetUsageBefore deletes the hourly counts older than t (USAGE_COUNTER_RETENTION_DAYS).
func (s *Store) ForgetUsageBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM billing.usage_hourly WHERE hour < $1`, t)
	return tag.RowsAffected(), err
}

// enqueue writes ev to the outbox; false when its dedup key was taken already.
func enqueue(ctx context.Context, q querier, ev outboxEvent) (bool, error) {
	tag, err := q.Exec(ctx, `INSERT INTO billing.webhook_outbox (event_id, tenant_id, event_type, body, dedup_key, state, finished_at)
		VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 = 'unsent' THEN now() END) ON CONFLICT (dedup_key) DO NOTHING`,
		ev.id, ev.tenant, ev.eventType, ev.body, ev.dedupKey, ev.state)
	if err != nil {
		return false, fmt.Errorf("write webhook event: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// RecordEvent writes ev to the outbox on its own; false when its dedup key was taken.
func (s *Store) RecordEvent(ctx context.Context, ev outboxEvent) (bool, error) {
	return enqueue(ctx, s.pool, ev)
}

// claimedEvent is an outbox event leased for one delivery attempt.
type claimedEvent struct {
	id, tenant, eventType string
	body                  []byte
	attempts              int // counting this one
}

// claimWebhooks leases up to n due events for lease, counting the attempt.
func (s *Store) claimWebhooks(ctx context.Context, lease time.Duration, n int) ([]claimedEvent, error) {
	rows, err := s.pool.Query(ctx, `UPDATE billing.webhook_outbox o SET attempts = o.attempts + 1, lease_until = now() + $1::interval
		WHERE o.event_id IN (SELECT event_id FROM billing.webhook_outbox
			WHERE state = 'pending' AND next_attempt_at <= now() AND (lease_until IS NULL OR lease_until <= now())
			ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
		RETURNING o.event_id::text, o.tenant_id, o.event_type, o.body, o.attempts`, lease, n)
	if err != nil {
		return nil, fmt.Errorf("claim webhook events: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (claimedEvent, error) {
		var e claimedEvent
		return e, r.Scan(&e.id, &e.tenant, &e.eventType, &e.body, &e.attempts)
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook events: %w", err)
	}
	return out, nil
}

func (s *Store) webhookDelivered(ctx context.Context, id string) error {
	_, err := s.pool.Exec(ctx, `UPDATE billing.webhook_outbox SET state = 'delivered', lease_until = NULL, finished_at = now(), last_error = NULL
		WHERE event_id = $1`, id)
	return err
}

// webhookFailed records a failed attempt: due again at next, or a dead letter.
func (s *Store) webhookFailed(ctx context.Context, id, why string, next time.Time, dead bool) error {
	state := "pending"
	if dead {
		state, next = "dead", time.Now()
	}
	_, err := s.pool.Exec(ctx, `UPDATE billing.webhook_outbox SET state = $2, next_attempt_at = $3, lease_until = NULL, last_error = $4
		WHERE event_id = $1 AND state = 'pending'`, id, state, next, why)
	return err
}

// webhookReleased gives a claimed event back without counting the attempt.
func (s *Store) webhookReleased(ctx context.Context, id string, next time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE billing.webhook_outbox SET attempts = attempts - 1, next_attempt_at = $2, lease_until = NULL
		WHERE event_id = $1 AND state = 'pending'`, id, next)
	return err
}

// ForgetWebhooksBefore deletes delivered and unsent events finished before t; dead
// letters stay.
func (s *Store) ForgetWebhooksBefore(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM billing.webhook_outbox WHERE state IN ('delivered', 'unsent') AND finished_at < $1`, t)
	return tag.RowsAffected(), err
}

// upgradeRequest is a tenant's request for another plan.
type upgradeRequest struct {
	id, tenant, currentPlan, targetPlan, reason, requestedBy string
	createdAt                                                time.Time
}

// CreateUpgradeRequest records r and its webhook event in one transaction.
func (s *Store) CreateUpgradeRequest(ctx context.Context, r upgradeRequest, ev outboxEvent) (upgradeRequest, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `INSERT INTO billing.upgrade_requests (request_id, tenant_id, current_plan, target_plan, reason, requested_by)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING created_at`, r.id, r.tenant, r.currentPlan, r.targetPlan, r.reason, r.requestedBy).Scan(&r.createdAt); err != nil {
			return err
		}
		_, err := enqueue(ctx, tx, ev)
		return err
	})
	if err != nil {
		return upgradeRequest{}, fmt.Errorf("record upgrade request: %w", err)
	}
	return r, nil
}

// UpgradeRequests returns tenant's latest n requests, newest first.
func (s *Store) UpgradeRequests(ctx context.Context, tenant string, n int) ([]upgradeRequest, error) {
	rows, err := s.pool.Query(ctx, `SELECT request_id::text, tenant_id, current_plan, target_plan, reason, requested_by, created_at
		FROM billing.upgrade_requests WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT $2`, tenant, n)
	if err != nil {
		return nil, fmt.Errorf("upgrade requests of %s: %w", tenant, err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (upgradeRequest, error) {
		var u upgradeRequest
		return u, r.Scan(&u.id, &u.tenant, &u.currentPlan, &u.targetPlan, &u.reason, &u.requestedBy, &u.createdAt)
	})
}
