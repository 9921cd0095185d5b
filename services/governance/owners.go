package governance

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/dataowner"
)

// Owner is a service that owns rows about tenants, seen through the data-owner contract
// (data.proto): governance selects and purges through it and never touches its tables.
type Owner interface {
	Select(ctx context.Context, q *governancev1.DataQuery) (*governancev1.DataSelection, error)
	Purge(ctx context.Context, p *governancev1.DataPurge) (*governancev1.DataPurgeResult, error)
}

// Owners are the data owners by service name: run, ingest and governance itself (the audit
// log). A name left out is a service not reachable from this process.
type Owners map[string]Owner

// table is one kind of data and where it lives.
type table struct {
	owner, category, name string
}

var (
	tableSessions    = table{"run", "sessions", "run.sessions"}
	tableMessages    = table{"run", "messages", "run.messages"}
	tableCheckpoints = table{"run", "checkpoints", "run.checkpoints"}
	tableAudio       = table{"run", "audio", "run.audio"}
	tableDocuments   = table{"ingest", "documents", "ingest.documents"}
	tableAudit       = table{"governance", "audit_events", "governance.audit_events"}
)

// RunOwner adapts the run service's client.
func RunOwner(cc grpc.ClientConnInterface) Owner { return runOwner{runv1.NewRunServiceClient(cc)} }

type runOwner struct{ c runv1.RunServiceClient }

func (o runOwner) Select(ctx context.Context, q *governancev1.DataQuery) (*governancev1.DataSelection, error) {
	res, err := o.c.SelectSessionData(ctx, &runv1.SelectSessionDataRequest{Query: q})
	return res.GetSelection(), err
}

func (o runOwner) Purge(ctx context.Context, p *governancev1.DataPurge) (*governancev1.DataPurgeResult, error) {
	res, err := o.c.PurgeSessionData(ctx, &runv1.PurgeSessionDataRequest{Purge: p})
	return res.GetResult(), err
}

// IngestOwner adapts the ingest service's client.
func IngestOwner(cc grpc.ClientConnInterface) Owner {
	return ingestOwner{ingestv1.NewIngestServiceClient(cc)}
}

type ingestOwner struct{ c ingestv1.IngestServiceClient }

func (o ingestOwner) Select(ctx context.Context, q *governancev1.DataQuery) (*governancev1.DataSelection, error) {
	res, err := o.c.SelectDocumentData(ctx, &ingestv1.SelectDocumentDataRequest{Query: q})
	return res.GetSelection(), err
}

func (o ingestOwner) Purge(ctx context.Context, p *governancev1.DataPurge) (*governancev1.DataPurgeResult, error) {
	res, err := o.c.PurgeDocumentData(ctx, &ingestv1.PurgeDocumentDataRequest{Purge: p})
	return res.GetResult(), err
}

// AuditOwner is governance's own table, the audit log, under the same contract. Anonymizing
// an event blanks actor_id, client_ip, request_id and resource_id and empties metadata;
// tenant, actor type, event type, outcome, resource type and times stay. Events are about a
// user key (actor_id), a session or a document (resource_id).
func AuditOwner(pool *pgxpool.Pool) Owner { return auditOwner{pool} }

type auditOwner struct{ pool *pgxpool.Pool }

var auditCategories = []string{"audit_events"}

func (o auditOwner) Select(ctx context.Context, req *governancev1.DataQuery) (*governancev1.DataSelection, error) {
	q, err := dataowner.CheckQuery(req, auditCategories)
	if err != nil {
		return nil, err
	}
	var actor, resourceType, resourceID *string
	switch q.SubjectType {
	case dataowner.SubjectUserKey:
		actor = &q.SubjectID
	case dataowner.SubjectSession, dataowner.SubjectDocument:
		resourceType, resourceID = &q.SubjectType, &q.SubjectID
	}
	// ids are uuids; the page order is theirs.
	rows, err := o.pool.Query(ctx, `SELECT e.id::text, e.actor_type, e.actor_id, e.resource_type, e.resource_id,
			CASE WHEN $8 THEN to_jsonb(e.*)::text ELSE '' END
		FROM governance.audit_events e
		WHERE e.tenant_id = $1 AND ($2::timestamptz IS NULL OR e.occurred_at < $2) AND ($3::text IS NULL OR e.actor_id = $3)
		AND ($4::text IS NULL OR (e.resource_type = $4 AND e.resource_id = $5)) AND e.id > coalesce(nullif($6, '')::uuid, '00000000-0000-0000-0000-000000000000')
		ORDER BY e.id LIMIT $7`, q.Tenant, q.OlderThan, actor, resourceType, resourceID, q.AfterID, q.Limit, q.WithRows)
	if err != nil {
		return nil, fmt.Errorf("select audit events: %w", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.DataItem, error) {
		var it governancev1.DataItem
		var actorType, actorID, resType, resID string
		if err := r.Scan(&it.Id, &actorType, &actorID, &resType, &resID, &it.RowJson); err != nil {
			return nil, err
		}
		if actorID != "" {
			it.Scopes = append(it.Scopes, &governancev1.HoldScope{ScopeType: dataowner.SubjectUserKey, ScopeId: actorID})
		}
		if resID != "" && (resType == dataowner.SubjectSession || resType == dataowner.SubjectDocument) {
			it.Scopes = append(it.Scopes, &governancev1.HoldScope{ScopeType: resType, ScopeId: resID})
		}
		return &it, nil
	})
	if err != nil {
		return nil, fmt.Errorf("select audit events: %w", err)
	}
	return dataowner.Selection(items, q.Limit), nil
}

func (o auditOwner) Purge(ctx context.Context, p *governancev1.DataPurge) (*governancev1.DataPurgeResult, error) {
	if err := dataowner.CheckPurge(p, auditCategories); err != nil {
		return nil, err
	}
	ids := make([]uuid.UUID, 0, len(p.GetIds()))
	for _, id := range p.GetIds() {
		u, err := uuid.Parse(id)
		if err != nil {
			return nil, apierr.InvalidArgument("ids", fmt.Sprintf("%q is not an audit event id", id))
		}
		ids = append(ids, u)
	}
	sql := `DELETE FROM governance.audit_events WHERE tenant_id = $1 AND id = ANY($2)`
	if p.GetMode() == governancev1.PurgeMode_PURGE_MODE_ANONYMIZE {
		sql = `UPDATE governance.audit_events SET actor_id = '', client_ip = '', request_id = '', resource_id = '', metadata = '{}'
			WHERE tenant_id = $1 AND id = ANY($2) AND (actor_id <> '' OR client_ip <> '' OR request_id <> '' OR resource_id <> '' OR metadata <> '{}')`
	}
	tag, err := o.pool.Exec(ctx, sql, p.GetTenantId(), ids)
	if err != nil {
		return nil, fmt.Errorf("purge audit events: %w", err)
	}
	return &governancev1.DataPurgeResult{Affected: tag.RowsAffected()}, nil
}
