package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Codes of retention runs.
const CodeRetentionRunNotFound = "RETENTION_RUN_NOT_FOUND"

// Retention run statuses and modes.
const (
	runPlanning  = "planning"
	runRunning   = "running"
	runCompleted = "completed"
	runFailed    = "failed"

	modeDelete     = "delete"
	modeAnonymize  = "anonymize"
	modeReportOnly = "report_only"
)

// maxPlanned bounds the rows one run plans per category; the report says when more expired.
const maxPlanned = 100_000

// purgeBatch is the ids per owner call.
const purgeBatch = 500

// reportIDs bounds each id list of a report.
const reportIDs = 1000

// retentionCategory is one kind of data a policy expires.
type retentionCategory struct {
	name  string
	table table // zero: no owner is built
	ttl   func(*governancev1.RetentionPolicy) *int32
	note  string // why it is unavailable
}

var retentionCategories = []retentionCategory{
	{name: "messages", table: tableMessages, ttl: func(p *governancev1.RetentionPolicy) *int32 { return p.MessagesTtlDays }},
	{name: "checkpoints", table: tableCheckpoints, ttl: func(p *governancev1.RetentionPolicy) *int32 { return p.CheckpointsTtlDays }},
	{name: "audit_events", table: tableAudit, ttl: func(p *governancev1.RetentionPolicy) *int32 { return p.AuditTtlDays }},
	{name: "documents", table: tableDocuments, ttl: func(p *governancev1.RetentionPolicy) *int32 { return p.DocumentsTtlDays }},
	{name: "backups", ttl: func(p *governancev1.RetentionPolicy) *int32 { return p.BackupsTtlDays },
		note: "backups are not built yet (services/failover); there are no backup sets to expire"},
}

func categoryTable(name string) (table, bool) {
	for _, c := range retentionCategories {
		if c.name == name {
			return c.table, c.table.owner != ""
		}
	}
	return table{}, false
}

// ownTenant answers the tenant a request names, which must be the caller's own.
func ownTenant(ctx context.Context, tenant string) (principal.Principal, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return p, err
	}
	if tenant != "" && tenant != p.TenantID {
		return p, apierr.New(codes.PermissionDenied, apierr.CodeForbidden, "tenant_id must be the caller's own tenant", "field", "tenant_id")
	}
	return p, nil
}

// StartRetentionRun plans a run of the tenant's policy and has the engine carry it out.
func (s *RetentionServer) StartRetentionRun(ctx context.Context, req *governancev1.StartRetentionRunRequest) (*governancev1.StartRetentionRunResponse, error) {
	p, err := ownTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	var runID int64
	started := false
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		pol, err := s.policy(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		mode := modeReportOnly
		switch {
		case pol.GetAnonymizeInsteadOfDelete():
			mode = modeAnonymize
		case pol.GetHardDeleteEnabled():
			mode = modeDelete
		}
		snapshot, err := protojson.Marshal(pol)
		if err != nil {
			return err
		}
		// Either this run starts, or the tenant's unfinished one is answered; one that
		// finishes between the two statements lets the insert be tried again.
		for attempt := 0; ; attempt++ {
			err = tx.QueryRow(ctx, `INSERT INTO governance.retention_runs (tenant_id, status, mode, policy, requested_by)
				VALUES ($1, 'planning', $2, $3, $4) ON CONFLICT (tenant_id) WHERE status IN ('planning', 'running') DO NOTHING RETURNING run_id`,
				p.TenantID, mode, snapshot, p.KeyID).Scan(&runID)
			if !errors.Is(err, pgx.ErrNoRows) {
				break
			}
			err = tx.QueryRow(ctx, `SELECT run_id FROM governance.retention_runs WHERE tenant_id = $1 AND status IN ('planning', 'running')`, p.TenantID).Scan(&runID)
			if !errors.Is(err, pgx.ErrNoRows) || attempt == 3 {
				return err
			}
		}
		if err != nil {
			return err
		}
		started = true
		for i, c := range retentionCategories {
			ttl := c.ttl(pol)
			status, note := "pending", ""
			switch {
			case ttl == nil:
				status, note = "skipped", "no ttl: kept forever"
			case c.table.owner == "":
				status, note = "unavailable", c.note
			case s.engine == nil || s.engine.owners[c.table.owner] == nil:
				status, note = "unavailable", fmt.Sprintf("the %s service is not reachable from governance", c.table.owner)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO governance.retention_categories (run_id, category, ord, ttl_days, cutoff, status, note)
				VALUES ($1, $2, $3, $4::int, CASE WHEN $4::int IS NULL THEN NULL ELSE now() - make_interval(days => $4::int) END, $5, $6)`,
				runID, c.name, i, ttl, status, note); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("start retention run: %w", err)
	}
	if started {
		s.audit.Record(ctx, audit.Event{Type: audit.TypeRetentionRunStarted, Outcome: audit.OutcomeSuccess, ResourceType: "retention_run", ResourceID: fmt.Sprint(runID)})
		if s.engine != nil {
			s.engine.Wake()
		}
	}
	run, err := s.report(ctx, p.TenantID, runID)
	if err != nil {
		return nil, err
	}
	return &governancev1.StartRetentionRunResponse{Run: run, Started: started}, nil
}

// GetRetentionReport reports a run of the tenant (the latest for run_id 0).
func (s *RetentionServer) GetRetentionReport(ctx context.Context, req *governancev1.GetRetentionReportRequest) (*governancev1.GetRetentionReportResponse, error) {
	p, err := ownTenant(ctx, req.GetTenantId())
	if err != nil {
		return nil, err
	}
	id := req.GetRunId()
	if id < 0 {
		return nil, apierr.InvalidArgument("run_id", "run_id must be positive (or 0 for the latest run)")
	}
	if id == 0 {
		err := s.pool.QueryRow(ctx, `SELECT run_id FROM governance.retention_runs WHERE tenant_id = $1 ORDER BY run_id DESC LIMIT 1`, p.TenantID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, apierr.New(codes.NotFound, CodeRetentionRunNotFound, "this tenant has no retention run yet; start one with POST /v1/admin/governance/retention/run")
		}
		if err != nil {
			return nil, fmt.Errorf("latest retention run: %w", err)
		}
	}
	run, err := s.report(ctx, p.TenantID, id)
	if err != nil {
		return nil, err
	}
	return &governancev1.GetRetentionReportResponse{Run: run}, nil
}

// report reads a run with its per-category outcome counts and ids.
func (s *RetentionServer) report(ctx context.Context, tenant string, id int64) (*governancev1.RetentionRun, error) {
	runs, err := readRuns(ctx, s.pool, `r.tenant_id = $1 AND r.run_id = $2`, tenant, id)
	if err != nil {
		return nil, fmt.Errorf("retention run %d: %w", id, err)
	}
	if len(runs) == 0 {
		return nil, apierr.New(codes.NotFound, CodeRetentionRunNotFound, fmt.Sprintf("no retention run %d in this tenant", id), "run_id", fmt.Sprint(id))
	}
	run := runs[0]
	rows, err := s.pool.Query(ctx, `SELECT c.category, c.ttl_days, c.cutoff, c.status, c.note, c.more_expired,
			count(i.item_id) FILTER (WHERE i.outcome = 'deleted'), count(i.item_id) FILTER (WHERE i.outcome = 'anonymized'),
			count(i.item_id) FILTER (WHERE i.outcome = 'held'), count(i.item_id) FILTER (WHERE i.outcome = 'kept'),
			count(i.item_id) FILTER (WHERE i.outcome = 'deferred'), count(i.item_id) FILTER (WHERE i.outcome IS NULL),
			coalesce((array_agg(i.item_id ORDER BY i.item_id) FILTER (WHERE i.outcome = 'deleted'))[1:$2], '{}'),
			coalesce((array_agg(i.item_id ORDER BY i.item_id) FILTER (WHERE i.outcome = 'anonymized'))[1:$2], '{}'),
			coalesce((array_agg(i.item_id ORDER BY i.item_id) FILTER (WHERE i.outcome = 'held'))[1:$2], '{}'),
			coalesce((array_agg(i.item_id ORDER BY i.item_id) FILTER (WHERE i.outcome = 'kept'))[1:$2], '{}'),
			coalesce((array_agg(i.item_id ORDER BY i.item_id) FILTER (WHERE i.outcome = 'deferred'))[1:$2], '{}')
		FROM governance.retention_categories c
		LEFT JOIN governance.retention_items i ON i.run_id = c.run_id AND i.category = c.category
		WHERE c.run_id = $1 GROUP BY c.run_id, c.category ORDER BY min(c.ord)`, id, reportIDs)
	if err != nil {
		return nil, fmt.Errorf("retention report %d: %w", id, err)
	}
	run.Categories, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.RetentionCategoryReport, error) {
		var c governancev1.RetentionCategoryReport
		var cutoff *time.Time
		if err := r.Scan(&c.Category, &c.TtlDays, &cutoff, &c.Status, &c.Note, &c.MoreExpired, &c.Deleted, &c.Anonymized, &c.Held, &c.Kept,
			&c.Deferred, &c.Pending, &c.DeletedIds, &c.AnonymizedIds, &c.HeldIds, &c.KeptIds, &c.DeferredIds); err != nil {
			return nil, err
		}
		if cutoff != nil {
			c.Cutoff = timestamppb.New(*cutoff)
		}
		c.IdsTruncated = max(c.Deleted, c.Anonymized, c.Held, c.Kept, c.Deferred) > reportIDs
		return &c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("retention report %d: %w", id, err)
	}
	return run, nil
}

// readRuns reads runs (without their categories) matching where over r.
func readRuns(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, where string, args ...any) ([]*governancev1.RetentionRun, error) {
	rows, err := q.Query(ctx, `SELECT r.run_id, r.tenant_id, r.status, r.mode, r.policy, r.requested_by, r.created_at, r.finished_at, r.error
		FROM governance.retention_runs r WHERE `+where+` ORDER BY r.run_id DESC`, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.RetentionRun, error) {
		run := &governancev1.RetentionRun{Policy: &governancev1.RetentionPolicy{}}
		var policy []byte
		var created time.Time
		var finished *time.Time
		if err := r.Scan(&run.RunId, &run.TenantId, &run.Status, &run.Mode, &policy, &run.RequestedBy, &created, &finished, &run.Error); err != nil {
			return nil, err
		}
		if err := protojson.Unmarshal(policy, run.Policy); err != nil {
			return nil, fmt.Errorf("policy of run %d: %w", run.RunId, err)
		}
		run.CreatedAt = timestamppb.New(created)
		if finished != nil {
			run.FinishedAt = timestamppb.New(*finished)
		}
		return run, nil
	})
}

// claimedRun is a run this replica holds the lease of.
type claimedRun struct {
	id             int64
	tenant, status string
	mode           string
	attempts       int
}

func (e *Engine) claimRun(ctx context.Context) (claimedRun, bool, error) {
	var r claimedRun
	err := e.pool.QueryRow(ctx, `UPDATE governance.retention_runs SET lease_until = now() + $1::interval, attempts = attempts + 1
		WHERE run_id = (SELECT run_id FROM governance.retention_runs WHERE status IN ('planning', 'running')
			AND (lease_until IS NULL OR lease_until < now()) ORDER BY run_id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING run_id, tenant_id, status, mode, attempts`, e.Lease.String()).Scan(&r.id, &r.tenant, &r.status, &r.mode, &r.attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("claim a retention run: %w", err)
	}
	return r, true, nil
}

// runRetention plans the run if it is not yet, then purges what is pending. On an error
// the run stays unfinished for a later attempt, until MaxAttempts.
func (e *Engine) runRetention(ctx context.Context, r claimedRun) error {
	err := e.retain(ctx, r)
	if err == nil {
		return nil
	}
	if r.attempts >= e.MaxAttempts && ctx.Err() == nil {
		if _, ferr := e.pool.Exec(context.WithoutCancel(ctx), `UPDATE governance.retention_runs SET status = 'failed', error = $2, finished_at = now(), lease_until = NULL
			WHERE run_id = $1`, r.id, fmt.Sprintf("gave up after %d attempts: %v", r.attempts, err)); ferr != nil {
			return errors.Join(err, ferr)
		}
		e.audit.Record(ctx, audit.Event{TenantID: r.tenant, Type: audit.TypeRetentionRunCompleted, Outcome: audit.OutcomeFailure, ResourceType: "retention_run",
			ResourceID: fmt.Sprint(r.id), Metadata: map[string]any{"attempts": r.attempts}})
	}
	return fmt.Errorf("retention run %d: %w", r.id, err)
}

func (e *Engine) retain(ctx context.Context, r claimedRun) error {
	type cat struct {
		name, status string
		cutoff       *time.Time
	}
	rows, err := e.pool.Query(ctx, `SELECT category, status, cutoff FROM governance.retention_categories WHERE run_id = $1 AND status IN ('pending', 'planned') ORDER BY ord`, r.id)
	if err != nil {
		return err
	}
	var cats []cat
	var c cat
	if _, err := pgx.ForEachRow(rows, []any{&c.name, &c.status, &c.cutoff}, func() error { cats = append(cats, c); return nil }); err != nil {
		return err
	}
	// Plan every category before purging any: the plan is the report's basis.
	for _, c := range cats {
		if c.status == "pending" {
			if err := e.plan(ctx, r, c.name, *c.cutoff); err != nil {
				return fmt.Errorf("plan %s: %w", c.name, err)
			}
		}
	}
	if _, err := e.pool.Exec(ctx, `UPDATE governance.retention_runs SET status = 'running' WHERE run_id = $1 AND status = 'planning'`, r.id); err != nil {
		return err
	}
	for _, c := range cats {
		if err := e.purgeCategory(ctx, r, c.name); err != nil {
			return fmt.Errorf("purge %s: %w", c.name, err)
		}
	}
	var counts map[string]int64
	err = pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `SELECT outcome, count(*) FROM governance.retention_items WHERE run_id = $1 GROUP BY outcome`, r.id)
		if err != nil {
			return err
		}
		counts = map[string]int64{}
		var o string
		var n int64
		if _, err := pgx.ForEachRow(rows, []any{&o, &n}, func() error { counts[o] = n; return nil }); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE governance.retention_runs SET status = 'completed', finished_at = now(), lease_until = NULL WHERE run_id = $1`, r.id)
		return err
	})
	if err != nil {
		return err
	}
	md := map[string]any{"mode": r.mode}
	for o, n := range counts {
		md[o] = n
	}
	e.audit.Record(ctx, audit.Event{TenantID: r.tenant, Type: audit.TypeRetentionRunCompleted, Outcome: audit.OutcomeSuccess, ResourceType: "retention_run",
		ResourceID: fmt.Sprint(r.id), Metadata: md})
	return nil
}

// plan records every expired row of a category with what will become of it. Planning again
// after a crash selects the same rows (the cutoff is fixed) and adds none twice.
func (e *Engine) plan(ctx context.Context, r claimedRun, category string, cutoff time.Time) error {
	t, _ := categoryTable(category)
	owner := e.owners[t.owner]
	holds, err := e.holds(ctx, r.tenant)
	if err != nil {
		return err
	}
	planned, after, more := 0, "", false
	for {
		sel, err := owner.Select(ctx, &governancev1.DataQuery{TenantId: r.tenant, Category: t.category, OlderThan: timestamppb.New(cutoff),
			AfterId: after, Limit: int32(min(1000, maxPlanned-planned))})
		if err != nil {
			return err
		}
		var ids, actions, outcomes, scopes []string
		for _, it := range sel.GetItems() {
			sc := scopesOf(it)
			action, outcome := r.mode, ""
			switch {
			case holds.covers(sc) != 0:
				action, outcome = "held", "held"
			case r.mode == modeReportOnly:
				action, outcome = "kept", "kept"
			}
			b, err := json.Marshal(sc)
			if err != nil {
				return err
			}
			ids, actions, outcomes, scopes = append(ids, it.GetId()), append(actions, action), append(outcomes, outcome), append(scopes, string(b))
		}
		if _, err := e.pool.Exec(ctx, `INSERT INTO governance.retention_items (run_id, category, item_id, action, outcome, scopes)
			SELECT $1, $2, i, a, nullif(o, ''), s::jsonb FROM unnest($3::text[], $4::text[], $5::text[], $6::text[]) AS u(i, a, o, s)
			ON CONFLICT DO NOTHING`, r.id, category, ids, actions, outcomes, scopes); err != nil {
			return err
		}
		planned += len(sel.GetItems())
		if sel.GetNextAfterId() == "" {
			break
		}
		if planned >= maxPlanned {
			more = true
			break
		}
		after = sel.GetNextAfterId()
		if err := e.renew(ctx, "retention_runs", "run_id", r.id); err != nil {
			return err
		}
	}
	_, err = e.pool.Exec(ctx, `UPDATE governance.retention_categories SET status = 'planned', more_expired = $3 WHERE run_id = $1 AND category = $2`, r.id, category, more)
	return err
}

// purgeCategory purges the category's pending rows batch by batch. Each batch is marked
// once its owner answered; a crash in between resends the batch, which changes nothing the
// second time.
func (e *Engine) purgeCategory(ctx context.Context, r claimedRun, category string) error {
	t, _ := categoryTable(category)
	owner := e.owners[t.owner]
	mode := governancev1.PurgeMode_PURGE_MODE_DELETE
	if r.mode == modeAnonymize {
		mode = governancev1.PurgeMode_PURGE_MODE_ANONYMIZE
	}
	for {
		rows, err := e.pool.Query(ctx, `SELECT item_id, scopes FROM governance.retention_items
			WHERE run_id = $1 AND category = $2 AND outcome IS NULL ORDER BY item_id LIMIT $3`, r.id, category, purgeBatch)
		if err != nil {
			return err
		}
		type item struct {
			id     string
			scopes []scope
		}
		var batch []item
		var it item
		if _, err := pgx.ForEachRow(rows, []any{&it.id, &it.scopes}, func() error {
			batch = append(batch, it)
			it.scopes = nil // the next row's scopes get their own slice
			return nil
		}); err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		// A hold placed since the plan keeps its rows too.
		holds, err := e.holds(ctx, r.tenant)
		if err != nil {
			return err
		}
		var purge, held []string
		for _, it := range batch {
			if holds.covers(it.scopes) != 0 {
				held = append(held, it.id)
			} else {
				purge = append(purge, it.id)
			}
		}
		var deferred []string
		if len(purge) > 0 {
			res, err := owner.Purge(ctx, &governancev1.DataPurge{TenantId: r.tenant, Category: t.category, Ids: purge, Mode: mode})
			if err != nil {
				return err
			}
			deferred = res.GetDeferredIds()
		}
		done := map[string]string{modeDelete: "deleted", modeAnonymize: "anonymized"}[r.mode]
		ids, outcomes := make([]string, 0, len(batch)), make([]string, 0, len(batch))
		for _, id := range held {
			ids, outcomes = append(ids, id), append(outcomes, "held")
		}
		isDeferred := map[string]bool{}
		for _, id := range deferred {
			isDeferred[id] = true
		}
		for _, id := range purge {
			o := done
			if isDeferred[id] {
				o = "deferred"
			}
			ids, outcomes = append(ids, id), append(outcomes, o)
		}
		if _, err := e.pool.Exec(ctx, `UPDATE governance.retention_items i SET outcome = u.o FROM unnest($3::text[], $4::text[]) AS u(id, o)
			WHERE i.run_id = $1 AND i.category = $2 AND i.item_id = u.id AND i.outcome IS NULL`, r.id, category, ids, outcomes); err != nil {
			return err
		}
		if err := e.renew(ctx, "retention_runs", "run_id", r.id); err != nil {
			return err
		}
	}
	_, err := e.pool.Exec(ctx, `UPDATE governance.retention_categories SET status = 'done' WHERE run_id = $1 AND category = $2`, r.id, category)
	return err
}
