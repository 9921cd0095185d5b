package failover

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	failoverv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/failover/v1"
)

// Store records the backups made and the drills run (schema failover).
type Store struct{ pool *pgxpool.Pool }

// NewStore returns the store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// RecordBackup records a completed backup set.
func (s *Store) RecordBackup(ctx context.Context, m Manifest, dir string, signed bool, manifestSHA string) error {
	var bytes int64
	for _, f := range m.Files {
		bytes += f.Bytes
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO failover.backups (backup_id, type, dir, bytes, encrypted, signed, manifest_sha256, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (backup_id) DO NOTHING`, m.BackupID, m.Type, dir, bytes, m.Encrypted, signed, manifestSHA, m.CreatedAt)
	return err
}

// MarkPruned records that sets were deleted by retention.
func (s *Store) MarkPruned(ctx context.Context, ids []string) error {
	_, err := s.pool.Exec(ctx, `UPDATE failover.backups SET pruned_at = now() WHERE backup_id = ANY($1) AND pruned_at IS NULL`, ids)
	return err
}

// RecordDrill records a restore drill's result.
func (s *Store) RecordDrill(ctx context.Context, backupID string, ok bool, detail string, started time.Time, took time.Duration) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO failover.drills (backup_id, ok, detail, started_at, duration_ms) VALUES ($1, $2, $3, $4, $5)`,
		backupID, ok, detail, started, took.Milliseconds())
	return err
}

// lastBackup is the newest set with the database not pruned, and its directory; nil if none.
func (s *Store) lastBackup(ctx context.Context) (*failoverv1.BackupSummary, string, error) {
	var b failoverv1.BackupSummary
	var created time.Time
	var dir string
	err := s.pool.QueryRow(ctx, `SELECT backup_id, type, created_at, bytes, encrypted, signed, manifest_sha256, dir FROM failover.backups
		WHERE pruned_at IS NULL AND type IN ('all', 'db') ORDER BY created_at DESC LIMIT 1`).
		Scan(&b.BackupId, &b.Type, &created, &b.Bytes, &b.Encrypted, &b.Signed, &b.ManifestSha256, &dir)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("last backup: %w", err)
	}
	b.CreatedAt = timestamppb.New(created)
	return &b, dir, nil
}

// lastDrill is the newest drill (okOnly: the newest successful one), or nil.
func (s *Store) lastDrill(ctx context.Context, okOnly bool) (*failoverv1.DrillSummary, error) {
	var d failoverv1.DrillSummary
	var started time.Time
	err := s.pool.QueryRow(ctx, `SELECT drill_id, backup_id, ok, detail, started_at, duration_ms FROM failover.drills
		WHERE ok OR NOT $1 ORDER BY started_at DESC LIMIT 1`, okOnly).Scan(&d.DrillId, &d.BackupId, &d.Ok, &d.Detail, &started, &d.DurationMs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("last drill: %w", err)
	}
	d.StartedAt = timestamppb.New(started)
	return &d, nil
}
