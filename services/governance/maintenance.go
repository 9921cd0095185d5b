package governance

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexusrag/nexusrag/pkg/maintenance"
)

// Config is governance's configuration.
type Config struct {
	// AuditRetentionDays bounds the audit log of every tenant (the prune_audit task); 0
	// keeps it forever. A tenant's own audit_ttl_days may keep less, never more.
	AuditRetentionDays int `env:"AUDIT_RETENTION_DAYS" envDefault:"400"`
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	if c.AuditRetentionDays < 0 || c.AuditRetentionDays > maxTTLDays {
		return fmt.Errorf("AUDIT_RETENTION_DAYS: %d is outside 0..%d (0 keeps the audit log forever)", c.AuditRetentionDays, maxTTLDays)
	}
	return nil
}

// pruneBatch is the most events one statement deletes.
const pruneBatch = 10_000

// PruneAuditTask is the prune_audit maintenance task: it deletes audit events older than
// AUDIT_RETENTION_DAYS in every tenant, except those a legal hold keeps (a tenant hold, a
// user_key hold on the actor, a session or document hold on the resource).
func PruneAuditTask(pool *pgxpool.Pool, days int) maintenance.Task {
	return maintenance.Task{Name: "prune_audit", Run: func(ctx context.Context) (maintenance.Result, error) {
		if days == 0 {
			return maintenance.Result{Detail: "AUDIT_RETENTION_DAYS is 0: the audit log is kept forever; nothing pruned"}, nil
		}
		cutoff := time.Now().Add(-time.Duration(days) * 24 * time.Hour)
		var total int64
		for {
			tag, err := pool.Exec(ctx, `DELETE FROM governance.audit_events WHERE id IN (
				SELECT e.id FROM governance.audit_events e WHERE e.occurred_at < $1
				AND NOT EXISTS (SELECT 1 FROM governance.legal_holds h WHERE h.tenant_id = e.tenant_id AND h.released_at IS NULL
					AND (h.scope_type = 'tenant' OR (h.scope_type = 'user_key' AND h.scope_id = e.actor_id)
						OR (h.scope_type = e.resource_type AND h.scope_id = e.resource_id)))
				LIMIT $2)`, cutoff, pruneBatch)
			if err != nil {
				return maintenance.Result{Affected: total}, err
			}
			total += tag.RowsAffected()
			if tag.RowsAffected() < pruneBatch {
				break
			}
		}
		return maintenance.Result{Affected: total, Detail: fmt.Sprintf("deleted audit events older than AUDIT_RETENTION_DAYS (%d days), except held ones", days)}, nil
	}}
}
