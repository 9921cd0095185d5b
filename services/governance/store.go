package governance

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
)

// Store holds the governance schema's tables.
type Store struct{ pool *pgxpool.Pool }

// NewStore returns a store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Insert stores events in one statement; ids already stored are skipped. It returns the
// number of rows inserted.
func (s *Store) Insert(ctx context.Context, events []*governancev1.AuditEvent) (int, error) {
	n := len(events)
	ids := make([]uuid.UUID, n)
	at := make([]time.Time, n)
	cols := make([][]string, 9)
	for i := range cols {
		cols[i] = make([]string, n)
	}
	mds := make([]string, n)
	for i, e := range events {
		ids[i] = uuid.MustParse(e.GetId())
		at[i] = e.GetOccurredAt().AsTime()
		for j, v := range []string{e.GetTenantId(), e.GetActorType(), e.GetActorId(), e.GetEventType(), e.GetOutcome(),
			e.GetResourceType(), e.GetResourceId(), e.GetRequestId(), e.GetClientIp()} {
			cols[j][i] = v
		}
		md, err := protojson.Marshal(orEmpty(e.GetMetadata()))
		if err != nil {
			return 0, fmt.Errorf("encode audit metadata: %w", err)
		}
		mds[i] = string(md)
	}
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO governance.audit_events
		       (id, occurred_at, tenant_id, actor_type, actor_id, event_type, outcome, resource_type, resource_id, request_id, client_ip, metadata)
		SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
		                     $8::text[], $9::text[], $10::text[], $11::text[], $12::jsonb[])
		ON CONFLICT (id) DO NOTHING`,
		ids, at, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8], mds)
	if err != nil {
		return 0, fmt.Errorf("insert %d audit events: %w", n, err)
	}
	return int(tag.RowsAffected()), nil
}

func orEmpty(s *structpb.Struct) *structpb.Struct {
	if s == nil {
		return &structpb.Struct{}
	}
	return s
}

// ListQuery filters a tenant's events.
type ListQuery struct {
	EventType, Outcome, Actor, ActorType string
	Start, End                           time.Time // zero: unbounded
	Limit                                int
	After                                *cursor // keyset position: strictly older than this
}

// List returns up to q.Limit+1 events newest first (the extra one tells there is more).
func (s *Store) List(ctx context.Context, tenant string, q ListQuery) ([]*governancev1.AuditEvent, error) {
	var afterAt *time.Time
	var afterID *uuid.UUID
	if q.After != nil {
		afterAt, afterID = &q.After.At, &q.After.ID
	}
	rows, err := s.pool.Query(ctx, `
		SELECT id, occurred_at, tenant_id, actor_type, actor_id, event_type, outcome, resource_type, resource_id,
		       request_id, client_ip, metadata
		  FROM governance.audit_events
		 WHERE tenant_id = $1
		   AND ($2 = '' OR event_type = $2)
		   AND ($3 = '' OR outcome = $3 OR ($3 = 'failure' AND outcome = 'denied'))
		   AND ($4 = '' OR actor_id = $4)
		   AND ($5::timestamptz IS NULL OR occurred_at >= $5)
		   AND ($6::timestamptz IS NULL OR occurred_at < $6)
		   AND ($7::timestamptz IS NULL OR (occurred_at, id) < ($7, $8::uuid))
		   AND ($10 = '' OR actor_type = $10)
		 ORDER BY occurred_at DESC, id DESC
		 LIMIT $9`,
		tenant, q.EventType, q.Outcome, q.Actor, nullTime(q.Start), nullTime(q.End), afterAt, afterID, q.Limit+1, q.ActorType)
	if err != nil {
		return nil, fmt.Errorf("list audit events of tenant %s: %w", tenant, err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("list audit events of tenant %s: %w", tenant, err)
	}
	return events, nil
}

func scanEvent(row pgx.CollectableRow) (*governancev1.AuditEvent, error) {
	var (
		e  governancev1.AuditEvent
		id uuid.UUID
		at time.Time
		md []byte
	)
	if err := row.Scan(&id, &at, &e.TenantId, &e.ActorType, &e.ActorId, &e.EventType, &e.Outcome, &e.ResourceType,
		&e.ResourceId, &e.RequestId, &e.ClientIp, &md); err != nil {
		return nil, err
	}
	e.Id, e.OccurredAt = id.String(), timestamppb.New(at)
	e.Metadata = &structpb.Struct{}
	var m map[string]any
	if err := json.Unmarshal(md, &m); err == nil {
		if s, err := structpb.NewStruct(m); err == nil {
			e.Metadata = s
		}
	}
	return &e, nil
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}
