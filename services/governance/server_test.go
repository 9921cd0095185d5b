package governance_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/governance"
)

type harness struct {
	client  governancev1.AuditServiceClient
	pool    *pgxpool.Pool
	failing *failFirst
}

// failFirst wraps the real server and fails the first n RecordEvents calls after
// storing them, like a timeout that hits after the commit.
type failFirst struct {
	*governance.Server
	n int
}

func (f *failFirst) RecordEvents(ctx context.Context, req *governancev1.RecordEventsRequest) (*governancev1.RecordEventsResponse, error) {
	res, err := f.Server.RecordEvents(ctx, req)
	if err == nil && f.n > 0 {
		f.n--
		return nil, status.Error(codes.Unavailable, "connection reset")
	}
	return res, err
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	pool := pgtest.NewPool(t, governance.Migrations())
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	ff := &failFirst{Server: governance.NewServer(governance.NewStore(pool), logging.Discard())}
	srv.Register(&governancev1.AuditService_ServiceDesc, ff)
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	return &harness{client: governancev1.NewAuditServiceClient(conn), pool: pool, failing: ff}
}

func admin(tenant string) context.Context {
	return principal.With(context.Background(), principal.Principal{TenantID: tenant, KeyID: "k-" + tenant, Role: apiv1.Role_ROLE_ADMIN})
}

func event(tenant, typ, outcome, actor string, at time.Time) *governancev1.AuditEvent {
	return &governancev1.AuditEvent{Id: uuid.Must(uuid.NewV7()).String(), OccurredAt: timestamppb.New(at), TenantId: tenant,
		ActorType: audit.ActorAPIKey, ActorId: actor, EventType: typ, Outcome: outcome}
}

func TestRecordIsIdempotentAndRedacts(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	md, err := structpb.NewStruct(map[string]any{"route": "/v1/x", "api_key": "nrk_plain_secret",
		"deep": map[string]any{"list": []any{map[string]any{"message_text": "very private words"}}}})
	require.NoError(t, err)
	e := event("t1", audit.TypeRunInvoked, audit.OutcomeSuccess, "k1", time.Now())
	e.Metadata = md
	res, err := h.client.RecordEvents(ctx, &governancev1.RecordEventsRequest{Events: []*governancev1.AuditEvent{e}})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.GetRecorded())
	res, err = h.client.RecordEvents(ctx, &governancev1.RecordEventsRequest{Events: []*governancev1.AuditEvent{e}})
	require.NoError(t, err)
	require.EqualValues(t, 0, res.GetRecorded(), "same id stored once")

	var row string
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT a::text FROM governance.audit_events a WHERE id = $1`, e.GetId()).Scan(&row))
	require.Contains(t, row, "/v1/x")
	require.NotContains(t, row, "nrk_plain_secret")
	require.NotContains(t, row, "very private words")
	require.Contains(t, row, "[REDACTED]")
}

func TestRecordValidates(t *testing.T) {
	h := newHarness(t)
	ok := func() *governancev1.AuditEvent {
		return event("t1", audit.TypeRunInvoked, audit.OutcomeSuccess, "a", time.Now())
	}
	tests := []struct {
		name  string
		mut   func(*governancev1.AuditEvent)
		field string
	}{
		{"id not uuid", func(e *governancev1.AuditEvent) { e.Id = "x" }, "events[0].id"},
		{"no time", func(e *governancev1.AuditEvent) { e.OccurredAt = nil }, "events[0].occurred_at"},
		{"unknown type", func(e *governancev1.AuditEvent) { e.EventType = "made.up" }, "events[0].event_type"},
		{"unknown outcome", func(e *governancev1.AuditEvent) { e.Outcome = "meh" }, "events[0].outcome"},
		{"unknown actor type", func(e *governancev1.AuditEvent) { e.ActorType = "robot" }, "events[0].actor_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok()
			tt.mut(e)
			_, err := h.client.RecordEvents(context.Background(), &governancev1.RecordEventsRequest{Events: []*governancev1.AuditEvent{e}})
			ae, _ := apierr.FromStatus(status.Convert(err))
			require.Equal(t, codes.InvalidArgument, ae.GRPCCode)
			require.Equal(t, tt.field, ae.Details["field"])
		})
	}
}

func TestListFiltersPaginatesAndIsolatesTenants(t *testing.T) {
	h := newHarness(t)
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var batch []*governancev1.AuditEvent
	for i := range 45 {
		typ, outcome := audit.TypeAuthAccessSuccess, audit.OutcomeSuccess
		if i%3 == 0 {
			typ, outcome = audit.TypeAuthAccessFailure, audit.OutcomeFailure
		}
		batch = append(batch, event("t1", typ, outcome, fmt.Sprintf("actor-%d", i%2), base.Add(time.Duration(i)*time.Minute)))
	}
	batch = append(batch, event("t2", audit.TypeAuthAccessFailure, audit.OutcomeFailure, "actor-0", base))
	_, err := h.client.RecordEvents(context.Background(), &governancev1.RecordEventsRequest{Events: batch})
	require.NoError(t, err)

	// Pages of 10 walk all 45 of t1's events once, newest first.
	seen := map[string]bool{}
	var last time.Time
	cursor := ""
	pages := 0
	for {
		res, err := h.client.ListAuditEvents(admin("t1"), &governancev1.ListAuditEventsRequest{Limit: 10, Cursor: cursor})
		require.NoError(t, err)
		pages++
		for _, e := range res.GetEvents() {
			require.Equal(t, "t1", e.GetTenantId())
			require.False(t, seen[e.GetId()], "no duplicates across pages")
			seen[e.GetId()] = true
			if !last.IsZero() {
				require.True(t, e.GetOccurredAt().AsTime().Before(last), "newest first")
			}
			last = e.GetOccurredAt().AsTime()
		}
		if cursor = res.GetNextCursor(); cursor == "" {
			break
		}
	}
	require.Len(t, seen, 45)
	require.Equal(t, 5, pages)

	tests := []struct {
		name string
		req  *governancev1.ListAuditEventsRequest
		want int
	}{
		{"by type", &governancev1.ListAuditEventsRequest{EventType: audit.TypeAuthAccessFailure, Limit: 200}, 15},
		{"by outcome", &governancev1.ListAuditEventsRequest{Outcome: audit.OutcomeSuccess, Limit: 200}, 30},
		{"by actor", &governancev1.ListAuditEventsRequest{Actor: "actor-1", Limit: 200}, 22},
		{"by time range", &governancev1.ListAuditEventsRequest{StartTime: timestamppb.New(base.Add(10 * time.Minute)), EndTime: timestamppb.New(base.Add(20 * time.Minute)), Limit: 200}, 10},
		{"combined", &governancev1.ListAuditEventsRequest{EventType: audit.TypeAuthAccessFailure, Actor: "actor-0", Limit: 200}, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.client.ListAuditEvents(admin("t1"), tt.req)
			require.NoError(t, err)
			require.Len(t, res.GetEvents(), tt.want)
		})
	}

	res, err := h.client.ListAuditEvents(admin("t2"), &governancev1.ListAuditEventsRequest{})
	require.NoError(t, err)
	require.Len(t, res.GetEvents(), 1, "t2 sees only its own event")
	res, err = h.client.ListAuditEvents(admin("t3"), &governancev1.ListAuditEventsRequest{})
	require.NoError(t, err)
	require.Empty(t, res.GetEvents())
}

func TestListRejectsBadInput(t *testing.T) {
	h := newHarness(t)
	now := time.Now()
	tests := []struct {
		name string
		req  *governancev1.ListAuditEventsRequest
		code string
	}{
		{"limit too high", &governancev1.ListAuditEventsRequest{Limit: 201}, apierr.CodeInvalidArgument},
		{"negative limit", &governancev1.ListAuditEventsRequest{Limit: -1}, apierr.CodeInvalidArgument},
		{"unknown outcome", &governancev1.ListAuditEventsRequest{Outcome: "maybe"}, apierr.CodeInvalidArgument},
		{"unknown type", &governancev1.ListAuditEventsRequest{EventType: "x.y"}, apierr.CodeInvalidArgument},
		{"inverted range", &governancev1.ListAuditEventsRequest{StartTime: timestamppb.New(now), EndTime: timestamppb.New(now.Add(-time.Hour))}, apierr.CodeInvalidArgument},
		{"garbage cursor", &governancev1.ListAuditEventsRequest{Cursor: "not-a-cursor"}, governance.CodeInvalidCursor},
		{"base64 of junk", &governancev1.ListAuditEventsRequest{Cursor: "eyJ4IjoxfQ"}, governance.CodeInvalidCursor},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := h.client.ListAuditEvents(admin("t1"), tt.req)
			ae, ok := apierr.FromStatus(status.Convert(err))
			require.True(t, ok, "%v", err)
			require.Equal(t, tt.code, ae.Code)
		})
	}
	reader := principal.With(context.Background(), principal.Principal{TenantID: "t1", Role: apiv1.Role_ROLE_READER})
	_, err := h.client.ListAuditEvents(reader, &governancev1.ListAuditEventsRequest{})
	require.Equal(t, codes.PermissionDenied, status.Code(err))
}

// TestRecorderDeliversEverythingOnce runs the real recorder against the real server,
// which fails its first calls after committing: nothing lost, nothing doubled.
func TestRecorderDeliversEverythingOnce(t *testing.T) {
	h := newHarness(t)
	h.failing.n = 2
	rec := audit.NewRecorder(h.client, logging.Discard(), audit.Options{BatchSize: 16, FlushInterval: 5 * time.Millisecond})
	rec.Start()
	const n = 200
	for i := range n {
		rec.Record(admin("t1"), audit.Event{Type: audit.TypeAuthAccessSuccess, Outcome: audit.OutcomeSuccess, Metadata: map[string]any{"i": i}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, rec.Close(ctx))
	var got, distinct int
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT count(*), count(DISTINCT metadata->>'i') FROM governance.audit_events`).Scan(&got, &distinct))
	require.Equal(t, n, got)
	require.Equal(t, n, distinct)
}

// TestRefusalsAreFailures: a refusal is recorded as a failure, including one sent by a
// recorder of the time it was "denied", and rows stored then are found as failures too.
func TestRefusalsAreFailures(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	now := time.Now()
	legacy := event("t1", audit.TypeRBACForbidden, "denied", "old-recorder", now)
	_, err := h.client.RecordEvents(ctx, &governancev1.RecordEventsRequest{Events: []*governancev1.AuditEvent{
		event("t1", audit.TypeRBACForbidden, audit.OutcomeFailure, "k1", now), legacy}})
	require.NoError(t, err)
	var stored string
	require.NoError(t, h.pool.QueryRow(ctx, `SELECT outcome FROM governance.audit_events WHERE id = $1`, legacy.GetId()).Scan(&stored))
	require.Equal(t, audit.OutcomeFailure, stored, "normalized on the way in")
	_, err = h.pool.Exec(ctx, `INSERT INTO governance.audit_events (id, occurred_at, tenant_id, actor_type, actor_id, event_type, outcome)
		VALUES ($1, now(), 't1', 'api_key', 'row-of-old', 'rbac.forbidden', 'denied')`, uuid.Must(uuid.NewV7()))
	require.NoError(t, err)

	for _, filter := range []string{"failure", "denied"} {
		res, err := h.client.ListAuditEvents(admin("t1"), &governancev1.ListAuditEventsRequest{EventType: audit.TypeRBACForbidden, Outcome: filter})
		require.NoError(t, err)
		require.Len(t, res.GetEvents(), 3, filter)
	}
	res, err := h.client.ListAuditEvents(admin("t1"), &governancev1.ListAuditEventsRequest{Outcome: audit.OutcomeSuccess})
	require.NoError(t, err)
	require.Empty(t, res.GetEvents())
}
