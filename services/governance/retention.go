package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

const maxTTLDays = 36500

// RetentionServer implements nexusrag.governance.v1.RetentionService.
type RetentionServer struct {
	governancev1.UnimplementedRetentionServiceServer
	pool   *pgxpool.Pool
	engine *Engine // nil: runs are recorded but nothing carries them out
	audit  Recorder
	log    *slog.Logger
}

// NewRetentionServer returns the RetentionService over pool; engine carries runs out.
func NewRetentionServer(pool *pgxpool.Pool, engine *Engine, rec Recorder, log *slog.Logger) *RetentionServer {
	return &RetentionServer{pool: pool, engine: engine, audit: rec, log: log}
}

const retentionColumns = `messages_ttl_days, checkpoints_ttl_days, audit_ttl_days, documents_ttl_days, backups_ttl_days,
	hard_delete_enabled, anonymize_instead_of_delete, updated_at`

func (s *RetentionServer) policy(ctx context.Context, q querier, tenant string) (*governancev1.RetentionPolicy, error) {
	p := &governancev1.RetentionPolicy{TenantId: tenant}
	var updated time.Time
	err := q.QueryRow(ctx, `SELECT `+retentionColumns+` FROM governance.retention_policies WHERE tenant_id = $1`, tenant).
		Scan(&p.MessagesTtlDays, &p.CheckpointsTtlDays, &p.AuditTtlDays, &p.DocumentsTtlDays, &p.BackupsTtlDays,
			&p.HardDeleteEnabled, &p.AnonymizeInsteadOfDelete, &updated)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, nil // nothing set: keep everything
	}
	if err != nil {
		return nil, fmt.Errorf("retention policy of %s: %w", tenant, err)
	}
	p.UpdatedAt = timestamppb.New(updated)
	return p, nil
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// GetRetentionPolicy returns the caller's tenant's policy.
func (s *RetentionServer) GetRetentionPolicy(ctx context.Context, _ *governancev1.GetRetentionPolicyRequest) (*governancev1.GetRetentionPolicyResponse, error) {
	pr, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	p, err := s.policy(ctx, s.pool, pr.TenantID)
	if err != nil {
		return nil, err
	}
	return &governancev1.GetRetentionPolicyResponse{Policy: p}, nil
}

// UpdateRetentionPolicy changes the fields given; a ttl of 0 keeps that data forever.
func (s *RetentionServer) UpdateRetentionPolicy(ctx context.Context, req *governancev1.UpdateRetentionPolicyRequest) (*governancev1.UpdateRetentionPolicyResponse, error) {
	pr, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	ttls := []struct {
		field string
		v     *int32
	}{{"messages_ttl_days", req.MessagesTtlDays}, {"checkpoints_ttl_days", req.CheckpointsTtlDays}, {"audit_ttl_days", req.AuditTtlDays},
		{"documents_ttl_days", req.DocumentsTtlDays}, {"backups_ttl_days", req.BackupsTtlDays}}
	set := req.HardDeleteEnabled != nil || req.AnonymizeInsteadOfDelete != nil
	args := []any{pr.TenantID}
	for _, t := range ttls {
		if t.v == nil {
			args = append(args, nil, false) // keep the stored value
			continue
		}
		set = true
		if *t.v < 0 || *t.v > maxTTLDays {
			return nil, apierr.InvalidArgument(t.field, fmt.Sprintf("%s must be 1 to %d days, or 0 to keep forever", t.field, maxTTLDays))
		}
		if *t.v == 0 {
			args = append(args, nil, true) // unset
		} else {
			args = append(args, *t.v, true)
		}
	}
	if !set {
		return nil, apierr.InvalidArgument("messages_ttl_days", "nothing to update: send a *_ttl_days, hard_delete_enabled or anonymize_instead_of_delete")
	}
	args = append(args, req.HardDeleteEnabled, req.AnonymizeInsteadOfDelete)
	var out *governancev1.RetentionPolicy
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO governance.retention_policies (tenant_id) VALUES ($1) ON CONFLICT DO NOTHING`, pr.TenantID); err != nil {
			return err
		}
		// Each ttl: ($n value, $n+1 given); a given NULL unsets.
		if _, err := tx.Exec(ctx, `UPDATE governance.retention_policies SET
				messages_ttl_days    = CASE WHEN $3  THEN $2::int  ELSE messages_ttl_days END,
				checkpoints_ttl_days = CASE WHEN $5  THEN $4::int  ELSE checkpoints_ttl_days END,
				audit_ttl_days       = CASE WHEN $7  THEN $6::int  ELSE audit_ttl_days END,
				documents_ttl_days   = CASE WHEN $9  THEN $8::int  ELSE documents_ttl_days END,
				backups_ttl_days     = CASE WHEN $11 THEN $10::int ELSE backups_ttl_days END,
				hard_delete_enabled  = coalesce($12, hard_delete_enabled),
				anonymize_instead_of_delete = coalesce($13, anonymize_instead_of_delete),
				updated_at = now()
			WHERE tenant_id = $1`, args...); err != nil {
			return err
		}
		var err error
		out, err = s.policy(ctx, tx, pr.TenantID)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update retention policy: %w", err)
	}
	md := map[string]any{"hard_delete_enabled": out.GetHardDeleteEnabled(), "anonymize_instead_of_delete": out.GetAnonymizeInsteadOfDelete()}
	for name, v := range map[string]*int32{"messages_ttl_days": out.MessagesTtlDays, "checkpoints_ttl_days": out.CheckpointsTtlDays,
		"audit_ttl_days": out.AuditTtlDays, "documents_ttl_days": out.DocumentsTtlDays, "backups_ttl_days": out.BackupsTtlDays} {
		if v != nil {
			md[name] = *v
		}
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeRetentionPolicyChanged, Outcome: audit.OutcomeSuccess, ResourceType: "retention_policy",
		ResourceID: pr.TenantID, Metadata: md})
	return &governancev1.UpdateRetentionPolicyResponse{Policy: out}, nil
}
