package governance

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
)

// Engine carries out retention runs and DSARs in the background. Their state is in
// Postgres; a replica claims one by taking its lease, so that one replica works on it at a
// time, and any replica resumes it once a crash let the lease lapse.
type Engine struct {
	pool   *pgxpool.Pool
	owners Owners
	audit  Recorder
	log    *slog.Logger
	// Lease is how long a claim lasts without being renewed (each batch renews it).
	Lease time.Duration
	// MaxAttempts: a run or request that failed this many times is marked failed.
	MaxAttempts int
	wake        chan struct{}
}

// NewEngine returns an engine over the data owners.
func NewEngine(pool *pgxpool.Pool, owners Owners, rec Recorder, log *slog.Logger) *Engine {
	return &Engine{pool: pool, owners: owners, audit: rec, log: log, Lease: 2 * time.Minute, MaxAttempts: 5, wake: make(chan struct{}, 1)}
}

// SetOwner adds a data owner; call it before the process serves.
func (e *Engine) SetOwner(name string, o Owner) { e.owners[name] = o }

// Wake makes Run look for work now.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Run works until ctx ends: whenever woken, and every interval for what another replica
// left (a crash, an expired lease).
func (e *Engine) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			did, err := e.Step(ctx)
			if err != nil && ctx.Err() == nil {
				e.log.Warn("governance work failed; it is retried once its lease lapses", "err", err)
			}
			if !did || ctx.Err() != nil {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-e.wake:
		case <-t.C:
		}
	}
}

// Step claims one unfinished retention run or DSAR and carries it out; it reports whether
// there was one.
func (e *Engine) Step(ctx context.Context) (bool, error) {
	r, ok, err := e.claimRun(ctx)
	if err != nil || ok {
		if ok {
			err = e.runRetention(ctx, r)
		}
		return ok, err
	}
	d, ok, err := e.claimDsar(ctx)
	if err != nil || !ok {
		return false, err
	}
	return true, e.runDsar(ctx, d)
}

// renew extends a claim; false when it was lost (another replica took the work over).
func (e *Engine) renew(ctx context.Context, table, key string, id int64) error {
	tag, err := e.pool.Exec(ctx, `UPDATE governance.`+table+` SET lease_until = now() + $2::interval WHERE `+key+` = $1`, id, e.Lease.String())
	if err == nil && tag.RowsAffected() == 0 {
		err = fmt.Errorf("%s %d is gone", table, id)
	}
	return err
}

// holdSet is a tenant's active legal holds.
type holdSet struct {
	tenant  int64 // the tenant's own hold, 0 if none
	byScope map[[2]string]int64
}

func (e *Engine) holds(ctx context.Context, tenant string) (holdSet, error) {
	rows, err := e.pool.Query(ctx, `SELECT hold_id, scope_type, scope_id FROM governance.legal_holds WHERE tenant_id = $1 AND released_at IS NULL`, tenant)
	if err != nil {
		return holdSet{}, fmt.Errorf("legal holds of %s: %w", tenant, err)
	}
	h := holdSet{byScope: map[[2]string]int64{}}
	var id int64
	var st, sid string
	_, err = pgx.ForEachRow(rows, []any{&id, &st, &sid}, func() error {
		if st == "tenant" {
			h.tenant = id
		} else {
			h.byScope[[2]string{st, sid}] = id
		}
		return nil
	})
	return h, err
}

// scope is one thing a hold may cover (stored as JSON with a planned row).
type scope struct {
	Type string `json:"scope_type"`
	ID   string `json:"scope_id"`
}

// covers answers the hold that keeps a row of these scopes, or 0.
func (h holdSet) covers(scopes []scope) int64 {
	if h.tenant != 0 {
		return h.tenant
	}
	for _, s := range scopes {
		if id := h.byScope[[2]string{s.Type, s.ID}]; id != 0 {
			return id
		}
	}
	return 0
}

func scopesOf(it *governancev1.DataItem) []scope {
	out := make([]scope, 0, len(it.GetScopes()))
	for _, s := range it.GetScopes() {
		out = append(out, scope{Type: s.GetScopeType(), ID: s.GetScopeId()})
	}
	return out
}
