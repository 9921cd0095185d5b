package ui

import (
	"context"
	"embed"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// Migrations are the ui schema's migrations (action records).
func Migrations() pgstore.Migrations {
	return pgstore.Embedded("ui", migrationsFS, "migrations")
}

// Config is the BFF's configuration.
type Config struct {
	// ActionRetentionDays is how long action records are kept.
	ActionRetentionDays int `env:"UI_ACTION_RETENTION_DAYS" envDefault:"30"`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	if c.ActionRetentionDays < 1 || c.ActionRetentionDays > 3650 {
		return fmt.Errorf("UI_ACTION_RETENTION_DAYS: %d is outside 1..3650", c.ActionRetentionDays)
	}
	return nil
}

// Store holds the action records (schema ui).
type Store struct{ pool *pgxpool.Pool }

// NewStore returns the store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

type action struct {
	id, tenant, kind, entity, entityID, actor string
	acceptedAt                                time.Time
}

// Record keeps a, stamped now.
func (s *Store) Record(ctx context.Context, a action) (action, error) {
	err := s.pool.QueryRow(ctx, `INSERT INTO ui.actions (action_id, tenant_id, kind, entity, entity_id, actor) VALUES ($1, $2, $3, $4, $5, $6)
		RETURNING accepted_at`, a.id, a.tenant, a.kind, a.entity, a.entityID, a.actor).Scan(&a.acceptedAt)
	if err != nil {
		return action{}, fmt.Errorf("record action: %w", err)
	}
	return a, nil
}

// Prune deletes the actions accepted before t.
func (s *Store) Prune(ctx context.Context, t time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM ui.actions WHERE accepted_at < $1`, t)
	return tag.RowsAffected(), err
}

// PruneTask is the cleanup_actions maintenance task: it deletes the actions accepted more
// than retention ago (UI_ACTION_RETENTION_DAYS).
func (s *Store) PruneTask(retention time.Duration) maintenance.Task {
	return maintenance.Task{Name: "cleanup_actions", Run: func(ctx context.Context) (maintenance.Result, error) {
		n, err := s.Prune(ctx, time.Now().Add(-retention))
		return maintenance.Result{Affected: n, Detail: fmt.Sprintf("deleted UI action records older than UI_ACTION_RETENTION_DAYS (%d days)", int(retention.Hours()/24))}, err
	}}
}
