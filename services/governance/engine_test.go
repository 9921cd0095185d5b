package governance_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/governance"
)

// fakeOwner holds rows in memory under the data-owner contract, counting every change.
type fakeOwner struct {
	mu       sync.Mutex
	rows     map[string]map[string]*fakeRow // category -> id -> row
	changes  map[string]int                 // "category/id" -> times deleted or anonymized
	busy     map[string]bool                // ids whose purge is deferred
	failNext int                            // purge calls to apply, then fail: a crash after the owner committed
	failing  bool
}

type fakeRow struct {
	created    time.Time
	scope      [2]string
	content    string
	anonymized bool
}

func newFakeOwner() *fakeOwner {
	return &fakeOwner{rows: map[string]map[string]*fakeRow{}, changes: map[string]int{}, busy: map[string]bool{}, failNext: -1}
}

func (o *fakeOwner) add(category, id string, age time.Duration, scopeType, scopeID string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.rows[category] == nil {
		o.rows[category] = map[string]*fakeRow{}
	}
	o.rows[category][id] = &fakeRow{created: time.Now().Add(-age), scope: [2]string{scopeType, scopeID}, content: "content of " + id}
}

func (o *fakeOwner) Select(_ context.Context, q *governancev1.DataQuery) (*governancev1.DataSelection, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []string
	for id, r := range o.rows[q.GetCategory()] {
		match := q.GetSubjectType() == "tenant" || (r.scope == [2]string{q.GetSubjectType(), q.GetSubjectId()})
		if q.GetOlderThan() != nil {
			match = r.created.Before(q.GetOlderThan().AsTime())
		}
		if match && id > q.GetAfterId() {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	sel := &governancev1.DataSelection{}
	if len(ids) > int(q.GetLimit()) {
		ids = ids[:q.GetLimit()]
		sel.NextAfterId = ids[len(ids)-1]
	}
	for _, id := range ids {
		r := o.rows[q.GetCategory()][id]
		it := &governancev1.DataItem{Id: id, Scopes: []*governancev1.HoldScope{{ScopeType: r.scope[0], ScopeId: r.scope[1]}}}
		if q.GetWithRows() {
			it.RowJson = fmt.Sprintf(`{"id":%q,"content":%q}`, id, r.content)
		}
		sel.Items = append(sel.Items, it)
	}
	return sel, nil
}

func (o *fakeOwner) Purge(_ context.Context, p *governancev1.DataPurge) (*governancev1.DataPurgeResult, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failing {
		return nil, fmt.Errorf("owner unreachable")
	}
	res := &governancev1.DataPurgeResult{}
	for _, id := range p.GetIds() {
		r := o.rows[p.GetCategory()][id]
		switch {
		case o.busy[id]:
			res.DeferredIds = append(res.DeferredIds, id)
		case r == nil:
		case p.GetMode() == governancev1.PurgeMode_PURGE_MODE_DELETE:
			delete(o.rows[p.GetCategory()], id)
			o.changes[p.GetCategory()+"/"+id]++
			res.Affected++
		case !r.anonymized:
			r.anonymized, r.content = true, ""
			o.changes[p.GetCategory()+"/"+id]++
			res.Affected++
		}
	}
	if o.failNext == 0 {
		o.failing = true
		return nil, fmt.Errorf("connection reset after commit")
	}
	if o.failNext > 0 {
		o.failNext--
	}
	return res, nil
}

func (o *fakeOwner) count(category string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.rows[category])
}

type engineHarness struct {
	pool       *pgxpool.Pool
	run, ingst *fakeOwner
	engine     *governance.Engine
	retention  *governance.RetentionServer
	dsar       *governance.DsarServer
	holds      *governance.LegalHoldServer
	events     *audittest.Recorder
}

func newEngineHarness(t *testing.T) *engineHarness {
	t.Helper()
	pool := pgtest.NewPool(t, governance.Migrations())
	h := &engineHarness{pool: pool, run: newFakeOwner(), ingst: newFakeOwner(), events: &audittest.Recorder{}}
	h.engine = governance.NewEngine(pool, governance.Owners{"run": h.run, "ingest": h.ingst, "governance": governance.AuditOwner(pool)}, h.events, logging.Discard())
	h.retention = governance.NewRetentionServer(pool, h.engine, h.events, logging.Discard())
	h.dsar = governance.NewDsarServer(pool, h.engine, h.events, logging.Discard())
	h.holds = governance.NewLegalHoldServer(pool, h.events, logging.Discard())
	return h
}

// drain carries out everything claimable, as the background loop would.
func (h *engineHarness) drain(t *testing.T) {
	t.Helper()
	for {
		did, err := h.engine.Step(context.Background())
		require.NoError(t, err)
		if !did {
			return
		}
	}
}

func (h *engineHarness) hold(t *testing.T, ctx context.Context, scope, id string) *governancev1.LegalHold {
	t.Helper()
	res, err := h.holds.CreateLegalHold(ctx, &governancev1.CreateLegalHoldRequest{ScopeType: scope, ScopeId: id, Reason: "matter 42"})
	require.NoError(t, err)
	return res.GetLegalHold()
}

func (h *engineHarness) policy(t *testing.T, ctx context.Context, req *governancev1.UpdateRetentionPolicyRequest) {
	t.Helper()
	_, err := h.retention.UpdateRetentionPolicy(ctx, req)
	require.NoError(t, err)
}

func days(n int32) *int32 { return &n }
func yes() *bool          { b := true; return &b }

func category(t *testing.T, run *governancev1.RetentionRun, name string) *governancev1.RetentionCategoryReport {
	t.Helper()
	for _, c := range run.GetCategories() {
		if c.GetCategory() == name {
			return c
		}
	}
	t.Fatalf("no category %s in the report", name)
	return nil
}

func requireCode(t *testing.T, err error, code string) {
	t.Helper()
	require.Error(t, err)
	e, ok := apierr.From(err)
	require.True(t, ok, "not an API error: %v", err)
	require.Equal(t, code, e.Code, e.Message)
}

func TestRetentionRunDeletesExpiredRowsAndKeepsHeldOnes(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ctx := admin("t1")
	old, fresh := 40*24*time.Hour, time.Hour
	for i := range 3 {
		h.run.add("messages", fmt.Sprint(100+i), old, "session", "s-open")
	}
	h.run.add("messages", "200", old, "session", "s-held")
	h.run.add("messages", "300", fresh, "session", "s-open")
	h.ingst.add("documents", "d-old", old, "document", "d-old")
	h.ingst.add("documents", "d-held", old, "document", "d-held")
	h.ingst.add("documents", "d-busy", old, "document", "d-busy")
	h.ingst.add("documents", "d-new", fresh, "document", "d-new")
	h.ingst.busy["d-busy"] = true
	h.hold(t, ctx, "session", "s-held")
	h.hold(t, ctx, "document", "d-held")
	h.policy(t, ctx, &governancev1.UpdateRetentionPolicyRequest{MessagesTtlDays: days(30), DocumentsTtlDays: days(30), BackupsTtlDays: days(90),
		HardDeleteEnabled: yes()})

	started, err := h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{TenantId: "t1"})
	require.NoError(t, err)
	require.True(t, started.GetStarted())
	require.Equal(t, "planning", started.GetRun().GetStatus())
	require.Equal(t, "delete", started.GetRun().GetMode())
	h.drain(t)

	rep, err := h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{TenantId: "t1", RunId: started.GetRun().GetRunId()})
	require.NoError(t, err)
	run := rep.GetRun()
	require.Equal(t, "completed", run.GetStatus())
	msgs := category(t, run, "messages")
	require.Equal(t, []string{"100", "101", "102"}, msgs.GetDeletedIds())
	require.Equal(t, []string{"200"}, msgs.GetHeldIds())
	require.Equal(t, int64(3), msgs.GetDeleted())
	require.Equal(t, int64(1), msgs.GetHeld())
	require.Equal(t, "done", msgs.GetStatus())
	docs := category(t, run, "documents")
	require.Equal(t, []string{"d-old"}, docs.GetDeletedIds())
	require.Equal(t, []string{"d-held"}, docs.GetHeldIds())
	require.Equal(t, []string{"d-busy"}, docs.GetDeferredIds())
	require.Equal(t, "skipped", category(t, run, "checkpoints").GetStatus())
	require.Equal(t, "unavailable", category(t, run, "backups").GetStatus())
	require.Contains(t, category(t, run, "backups").GetNote(), "not built")

	// The owners agree with the report: the expired rows went, the held and fresh stayed.
	require.Equal(t, 2, h.run.count("messages"))
	require.Equal(t, 3, h.ingst.count("documents"))
	require.Contains(t, h.events.Types(), audit.TypeRetentionRunCompleted)

	// Safe to repeat: a second run finds only what a hold or ingestion kept.
	again, err := h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{})
	require.NoError(t, err)
	h.drain(t)
	rep, err = h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{RunId: again.GetRun().GetRunId()})
	require.NoError(t, err)
	require.Zero(t, category(t, rep.GetRun(), "messages").GetDeleted())
	require.Equal(t, int64(1), category(t, rep.GetRun(), "messages").GetHeld())
	for _, n := range h.run.changes {
		require.Equal(t, 1, n, "a row was changed twice")
	}
}

func TestRetentionRunResumesAfterACrashWithoutDeletingTwice(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ctx := admin("t1")
	for i := range 1200 { // three batches
		h.run.add("messages", fmt.Sprintf("%05d", i), 40*24*time.Hour, "session", fmt.Sprintf("s%d", i%7))
	}
	h.policy(t, ctx, &governancev1.UpdateRetentionPolicyRequest{MessagesTtlDays: days(30), HardDeleteEnabled: yes()})
	started, err := h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{})
	require.NoError(t, err)

	// The second batch is committed by the owner, and then the connection (or governance) dies.
	h.run.failNext = 1
	did, err := h.engine.Step(context.Background())
	require.True(t, did)
	require.Error(t, err)
	rep, err := h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{})
	require.NoError(t, err)
	require.Equal(t, "running", rep.GetRun().GetStatus())
	msgs := category(t, rep.GetRun(), "messages")
	require.Equal(t, int64(500), msgs.GetDeleted(), "the first batch is reported")
	require.Equal(t, int64(700), msgs.GetPending(), "the rest is planned, not lost")
	require.Equal(t, 200, h.run.count("messages"), "the owner committed two batches")

	// While the lease holds, no replica takes the run; once it lapses, one resumes it.
	did, err = h.engine.Step(context.Background())
	require.NoError(t, err)
	require.False(t, did)
	_, err = h.pool.Exec(context.Background(), `UPDATE governance.retention_runs SET lease_until = now() - interval '1 second'`)
	require.NoError(t, err)
	h.run.failing, h.run.failNext = false, -1
	h.drain(t)

	rep, err = h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{RunId: started.GetRun().GetRunId()})
	require.NoError(t, err)
	require.Equal(t, "completed", rep.GetRun().GetStatus())
	msgs = category(t, rep.GetRun(), "messages")
	require.Equal(t, int64(1200), msgs.GetDeleted())
	require.Zero(t, msgs.GetPending())
	require.Len(t, msgs.GetDeletedIds(), 1000)
	require.True(t, msgs.GetIdsTruncated())
	require.Zero(t, h.run.count("messages"))
	require.Len(t, h.run.changes, 1200)
	for id, n := range h.run.changes {
		require.Equal(t, 1, n, "%s deleted twice", id)
	}
}

func TestRetentionModesAndScope(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ctx := admin("t1")
	h.run.add("checkpoints", "c1", 10*24*time.Hour, "session", "s1")
	h.policy(t, ctx, &governancev1.UpdateRetentionPolicyRequest{CheckpointsTtlDays: days(7)})

	// Neither flag: the run reports what expired and keeps it.
	first, err := h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{})
	require.NoError(t, err)
	require.Equal(t, "report_only", first.GetRun().GetMode())
	// One unfinished run per tenant: starting again answers it.
	same, err := h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{})
	require.NoError(t, err)
	require.False(t, same.GetStarted())
	require.Equal(t, first.GetRun().GetRunId(), same.GetRun().GetRunId())
	h.drain(t)
	rep, err := h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{})
	require.NoError(t, err)
	require.Equal(t, []string{"c1"}, category(t, rep.GetRun(), "checkpoints").GetKeptIds())
	require.Equal(t, 1, h.run.count("checkpoints"))

	h.policy(t, ctx, &governancev1.UpdateRetentionPolicyRequest{AnonymizeInsteadOfDelete: yes()})
	_, err = h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{})
	require.NoError(t, err)
	h.drain(t)
	rep, err = h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{})
	require.NoError(t, err)
	require.Equal(t, "anonymize", rep.GetRun().GetMode())
	require.Equal(t, []string{"c1"}, category(t, rep.GetRun(), "checkpoints").GetAnonymizedIds())
	require.True(t, h.run.rows["checkpoints"]["c1"].anonymized)

	_, err = h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{TenantId: "t2"})
	requireCode(t, err, apierr.CodeForbidden)
	_, err = h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{TenantId: "t2"})
	requireCode(t, err, apierr.CodeForbidden)
	_, err = h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{RunId: 999})
	requireCode(t, err, governance.CodeRetentionRunNotFound)
	_, err = h.retention.GetRetentionReport(admin("t3"), &governancev1.GetRetentionReportRequest{})
	requireCode(t, err, governance.CodeRetentionRunNotFound)
}

func TestDsarExportThenApprovedDelete(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ctx, second := admin("t1"), principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "k-second", Role: apiv1.Role_ROLE_ADMIN})
	h.run.add("sessions", "s1", time.Hour, "session", "s1")
	h.run.add("messages", "1", time.Hour, "session", "s1")
	h.run.add("messages", "2", time.Hour, "session", "s1")
	h.run.add("messages", "3", time.Hour, "session", "s2")
	ev := event("t1", audit.TypeRunInvoked, audit.OutcomeSuccess, "k-user", time.Now())
	ev.ResourceType, ev.ResourceId, ev.ClientIp = "session", "s1", "10.0.0.7"
	_, err := governance.NewStore(h.pool).Insert(context.Background(), []*governancev1.AuditEvent{ev})
	require.NoError(t, err)

	exp, err := h.dsar.CreateDsar(ctx, &governancev1.CreateDsarRequest{RequestType: "export", SubjectType: "session", SubjectId: "s1", Reason: "ticket 7"})
	require.NoError(t, err)
	require.Equal(t, "queued", exp.GetDsar().GetStatus())
	h.drain(t)
	art, err := h.dsar.GetDsarArtifact(ctx, &governancev1.GetDsarArtifactRequest{DsarId: exp.GetDsar().GetDsarId()})
	require.NoError(t, err)
	rows := map[string]int64{}
	for i, f := range art.GetFiles() {
		entry := art.GetManifest().GetFiles()[i]
		sum := sha256.Sum256([]byte(f.GetNdjson()))
		require.Equal(t, hex.EncodeToString(sum[:]), entry.GetSha256(), f.GetName())
		rows[f.GetName()] = entry.GetRows()
	}
	require.Equal(t, map[string]int64{"governance.audit_events.ndjson": 1, "run.messages.ndjson": 2, "run.checkpoints.ndjson": 0,
		"run.audio.ndjson": 0, "run.sessions.ndjson": 1}, rows)
	require.Equal(t, governance.ManifestSum(art.GetManifest().GetFiles()), art.GetManifest().GetSha256())
	got, err := h.dsar.GetDsar(ctx, &governancev1.GetDsarRequest{DsarId: exp.GetDsar().GetDsarId()})
	require.NoError(t, err)
	require.Equal(t, art.GetManifest().GetSha256(), got.GetDsar().GetArtifactSha256())

	del, err := h.dsar.CreateDsar(ctx, &governancev1.CreateDsarRequest{RequestType: "delete", SubjectType: "session", SubjectId: "s1", Reason: "ticket 8"})
	require.NoError(t, err)
	id := del.GetDsar().GetDsarId()
	require.Equal(t, "pending_approval", del.GetDsar().GetStatus())
	h.drain(t)
	require.Equal(t, 3, h.run.count("messages"), "nothing runs before approval")
	_, err = h.dsar.GetDsarArtifact(ctx, &governancev1.GetDsarArtifactRequest{DsarId: id})
	requireCode(t, err, governance.CodeDsarRequiresApproval)
	_, err = h.dsar.ApproveDsar(ctx, &governancev1.ApproveDsarRequest{DsarId: id})
	requireCode(t, err, governance.CodeDsarSelfApproval)
	ok, err := h.dsar.ApproveDsar(second, &governancev1.ApproveDsarRequest{DsarId: id})
	require.NoError(t, err)
	require.Equal(t, "k-second", ok.GetDsar().GetApprovedBy())
	h.drain(t)

	done, err := h.dsar.GetDsar(ctx, &governancev1.GetDsarRequest{DsarId: id})
	require.NoError(t, err)
	require.Equal(t, "completed", done.GetDsar().GetStatus(), done.GetDsar().GetErrorMessage())
	require.Equal(t, 1, h.run.count("messages"), "s2's message stays")
	require.Zero(t, h.run.count("sessions"))
	var actor, ip, resource string
	require.NoError(t, h.pool.QueryRow(context.Background(), `SELECT actor_id, client_ip, resource_id FROM governance.audit_events WHERE tenant_id = 't1'`).
		Scan(&actor, &ip, &resource))
	require.Equal(t, [3]string{}, [3]string{actor, ip, resource}, "the audit row is anonymized, not deleted")
	receipt, err := h.dsar.GetDsarArtifact(ctx, &governancev1.GetDsarArtifactRequest{DsarId: id})
	require.NoError(t, err)
	for _, f := range receipt.GetFiles() {
		if f.GetName() == "run.messages.ids.ndjson" {
			require.Equal(t, "{\"action\":\"delete\",\"id\":\"1\"}\n{\"action\":\"delete\",\"id\":\"2\"}\n", f.GetNdjson())
		}
	}
	_, err = h.dsar.ApproveDsar(second, &governancev1.ApproveDsarRequest{DsarId: exp.GetDsar().GetDsarId()})
	requireCode(t, err, governance.CodeDsarNotPendingApprove)
	_, err = h.dsar.GetDsar(ctx, &governancev1.GetDsarRequest{DsarId: 4242})
	requireCode(t, err, governance.CodeDsarNotFound)
	_, err = h.dsar.GetDsar(admin("t2"), &governancev1.GetDsarRequest{DsarId: id})
	requireCode(t, err, governance.CodeDsarNotFound)
}

func TestDsarOnHeldDataIsRefused(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ctx, second := admin("t1"), principal.With(context.Background(), principal.Principal{TenantID: "t1", KeyID: "k-second", Role: apiv1.Role_ROLE_ADMIN})
	h.ingst.add("documents", "d1", time.Hour, "document", "d1")
	h.hold(t, ctx, "document", "d1")
	_, err := h.dsar.CreateDsar(ctx, &governancev1.CreateDsarRequest{RequestType: "delete", SubjectType: "document", SubjectId: "d1", Reason: "x"})
	requireCode(t, err, governance.CodeLegalHoldActive)

	// A hold placed after the approval fails the request when it runs, and changes nothing.
	h.run.add("messages", "1", time.Hour, "session", "s1")
	req, err := h.dsar.CreateDsar(ctx, &governancev1.CreateDsarRequest{RequestType: "anonymize", SubjectType: "tenant", Reason: "closing the account"})
	require.NoError(t, err)
	_, err = h.dsar.ApproveDsar(second, &governancev1.ApproveDsarRequest{DsarId: req.GetDsar().GetDsarId()})
	require.NoError(t, err)
	h.drain(t)
	got, err := h.dsar.GetDsar(ctx, &governancev1.GetDsarRequest{DsarId: req.GetDsar().GetDsarId()})
	require.NoError(t, err)
	require.Equal(t, "failed", got.GetDsar().GetStatus())
	require.Equal(t, governance.CodeLegalHoldActive, got.GetDsar().GetErrorCode())
	require.False(t, h.run.rows["messages"]["1"].anonymized)
	require.False(t, h.ingst.rows["documents"]["d1"].anonymized)
	_, err = h.dsar.GetDsarArtifact(ctx, &governancev1.GetDsarArtifactRequest{DsarId: req.GetDsar().GetDsarId()})
	requireCode(t, err, governance.CodeDsarFailed)

	for _, bad := range []struct {
		req   *governancev1.CreateDsarRequest
		field string
	}{
		{&governancev1.CreateDsarRequest{RequestType: "erase", SubjectType: "session", SubjectId: "s", Reason: "r"}, "request_type"},
		{&governancev1.CreateDsarRequest{RequestType: "export", SubjectType: "user", SubjectId: "s", Reason: "r"}, "subject_type"},
		{&governancev1.CreateDsarRequest{RequestType: "export", SubjectType: "session", Reason: "r"}, "subject_id"},
		{&governancev1.CreateDsarRequest{RequestType: "export", SubjectType: "session", SubjectId: "s"}, "reason"},
	} {
		_, err := h.dsar.CreateDsar(ctx, bad.req)
		e, ok := apierr.From(err)
		require.True(t, ok)
		require.Equal(t, codes.InvalidArgument, e.GRPCCode)
		require.Equal(t, bad.field, e.Details["field"])
	}
	_, err = h.dsar.CreateDsar(ctx, &governancev1.CreateDsarRequest{RequestType: "export", SubjectType: "tenant", SubjectId: "t2", Reason: "r"})
	requireCode(t, err, apierr.CodeForbidden)
}

func TestGovernanceStatusAndEvidence(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ctx := admin("t1")
	reports := governance.NewReportServer(h.pool, logging.Discard())
	h.run.add("messages", "1", 40*24*time.Hour, "session", "s1")
	hold := h.hold(t, ctx, "session", "s9")
	h.hold(t, ctx, "document", "d9")
	_, err := h.holds.ReleaseLegalHold(ctx, &governancev1.ReleaseLegalHoldRequest{HoldId: hold.GetHoldId()})
	require.NoError(t, err)
	h.policy(t, ctx, &governancev1.UpdateRetentionPolicyRequest{MessagesTtlDays: days(30), HardDeleteEnabled: yes()})
	_, err = h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{})
	require.NoError(t, err)
	h.drain(t)
	_, err = h.dsar.CreateDsar(ctx, &governancev1.CreateDsarRequest{RequestType: "delete", SubjectType: "session", SubjectId: "s2", Reason: "r"})
	require.NoError(t, err)
	_, err = governance.NewStore(h.pool).Insert(context.Background(), []*governancev1.AuditEvent{
		event("t1", audit.TypeLegalHoldCreated, audit.OutcomeSuccess, "k-t1", time.Now()),
		event("t1", audit.TypeLegalHoldCreated, audit.OutcomeSuccess, "k-t1", time.Now()),
		event("t1", audit.TypeDsarRequested, audit.OutcomeSuccess, "k-t1", time.Now()),
		event("t1", audit.TypeDsarRequested, audit.OutcomeSuccess, "k-t1", time.Now().Add(-60*24*time.Hour)), // outside the window
		event("t2", audit.TypeDsarRequested, audit.OutcomeSuccess, "k-t2", time.Now()),                       // another tenant
	})
	require.NoError(t, err)

	st, err := reports.GetGovernanceStatus(ctx, &governancev1.GetGovernanceStatusRequest{})
	require.NoError(t, err)
	require.Equal(t, int32(1), st.GetActiveLegalHolds())
	require.True(t, st.GetRetentionPolicySet())
	require.Equal(t, int32(1), st.GetPendingDsars())
	require.Equal(t, int32(1), st.GetDsarsAwaitingApproval())
	require.Len(t, st.GetLatestRetentionRuns(), 1)
	require.Equal(t, "completed", st.GetLatestRetentionRuns()[0].GetStatus())

	ev, err := reports.GetGovernanceEvidence(ctx, &governancev1.GetGovernanceEvidenceRequest{WindowDays: 30})
	require.NoError(t, err)
	require.Equal(t, int64(3), ev.GetAuditEventsTotal())
	require.Equal(t, []*governancev1.EvidenceCount{{Key: audit.TypeDsarRequested, Count: 1}, {Key: audit.TypeLegalHoldCreated, Count: 2}},
		ev.GetAuditEventsByType())
	require.Equal(t, int32(1), ev.GetRetentionRuns())
	require.Equal(t, int64(1), ev.GetRowsDeletedByRetention())
	require.Equal(t, int32(2), ev.GetLegalHoldsCreated())
	require.Equal(t, int32(1), ev.GetLegalHoldsReleased())
	require.Equal(t, int32(1), ev.GetLegalHoldsActive())
	require.Equal(t, []*governancev1.EvidenceCount{{Key: "delete.pending_approval", Count: 1}}, ev.GetDsarsByTypeAndStatus())
	require.Equal(t, governance.EvidenceSum(ev), ev.GetSha256())
	require.Len(t, ev.GetSha256(), 64)

	_, err = reports.GetGovernanceEvidence(ctx, &governancev1.GetGovernanceEvidenceRequest{WindowDays: 400})
	requireCode(t, err, apierr.CodeInvalidArgument)

	// A store that cannot be read answers 503, never a report with parts missing.
	broken, err := pgxpool.New(context.Background(), h.pool.Config().ConnString())
	require.NoError(t, err)
	broken.Close()
	down := governance.NewReportServer(broken, logging.Discard())
	_, err = down.GetGovernanceStatus(ctx, &governancev1.GetGovernanceStatusRequest{})
	requireCode(t, err, governance.CodeReportUnavailable)
	_, err = down.GetGovernanceEvidence(ctx, &governancev1.GetGovernanceEvidenceRequest{})
	requireCode(t, err, governance.CodeReportUnavailable)
}

func TestPruneAuditKeepsHeldEvents(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	old := time.Now().Add(-500 * 24 * time.Hour)
	heldActor := event("t1", audit.TypeRunInvoked, audit.OutcomeSuccess, "k-held", old)
	heldSession := event("t1", audit.TypeRunInvoked, audit.OutcomeSuccess, "k-a", old)
	heldSession.ResourceType, heldSession.ResourceId = "session", "s-held"
	heldTenant := event("t2", audit.TypeRunInvoked, audit.OutcomeSuccess, "k-b", old)
	gone := event("t1", audit.TypeRunInvoked, audit.OutcomeSuccess, "k-a", old)
	fresh := event("t1", audit.TypeRunInvoked, audit.OutcomeSuccess, "k-a", time.Now())
	_, err := governance.NewStore(h.pool).Insert(context.Background(), []*governancev1.AuditEvent{heldActor, heldSession, heldTenant, gone, fresh})
	require.NoError(t, err)
	h.hold(t, admin("t1"), "user_key", "k-held")
	h.hold(t, admin("t1"), "session", "s-held")
	h.hold(t, admin("t2"), "tenant", "")

	res, err := governance.PruneAuditTask(h.pool, 400).Run(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, res.Affected)
	var left []string
	rows, err := h.pool.Query(context.Background(), `SELECT id::text FROM governance.audit_events ORDER BY id`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		left = append(left, id)
	}
	want := []string{heldActor.GetId(), heldSession.GetId(), heldTenant.GetId(), fresh.GetId()}
	slices.Sort(want)
	require.Equal(t, want, left)

	res, err = governance.PruneAuditTask(h.pool, 0).Run(context.Background())
	require.NoError(t, err)
	require.Zero(t, res.Affected)
	require.Contains(t, res.Detail, "kept forever")
}

// TestEvidenceChecksumCanBeRecomputedFromTheAnswer: the lines of the runbook
// (audit-evidence-export.md), built from the JSON answer, give the answer's sha256.
func TestEvidenceChecksumCanBeRecomputedFromTheAnswer(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ev := event("t1", audit.TypeDsarRequested, audit.OutcomeSuccess, "k", time.Now())
	_, err := governance.NewStore(h.pool).Insert(context.Background(), []*governancev1.AuditEvent{ev})
	require.NoError(t, err)
	res, err := governance.NewReportServer(h.pool, logging.Discard()).GetGovernanceEvidence(admin("t1"), &governancev1.GetGovernanceEvidenceRequest{WindowDays: 7})
	require.NoError(t, err)
	b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(res)
	require.NoError(t, err)
	var d map[string]any
	require.NoError(t, json.Unmarshal(b, &d))
	lines := []string{"tenant_id " + d["tenant_id"].(string), "window_start " + d["window_start"].(string), "window_end " + d["window_end"].(string)}
	for _, k := range []string{"audit_events_total", "retention_runs", "retention_runs_failed", "rows_deleted_by_retention", "rows_anonymized_by_retention",
		"legal_holds_created", "legal_holds_released", "legal_holds_active", "policy_rules"} {
		lines = append(lines, fmt.Sprintf("%s %v", k, d[k]))
	}
	for _, c := range d["audit_events_by_type"].([]any) {
		lines = append(lines, fmt.Sprintf("audit.%v %v", c.(map[string]any)["key"], c.(map[string]any)["count"]))
	}
	slices.Sort(lines)
	text := strings.Join(lines, "\n") + "\n"
	sum := sha256.Sum256([]byte(text))
	require.Equal(t, hex.EncodeToString(sum[:]), d["sha256"], text)
}

// TestHoldPlacedAfterPlanningKeepsItsRows: holds are checked again before each batch.
func TestHoldPlacedAfterPlanningKeepsItsRows(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	ctx := admin("t1")
	for i := range 30 {
		h.run.add("messages", fmt.Sprintf("%03d", i), 40*24*time.Hour, "session", fmt.Sprintf("s%d", i%3))
	}
	h.policy(t, ctx, &governancev1.UpdateRetentionPolicyRequest{MessagesTtlDays: days(30), HardDeleteEnabled: yes()})
	_, err := h.retention.StartRetentionRun(ctx, &governancev1.StartRetentionRunRequest{})
	require.NoError(t, err)
	h.run.failing = true // planned, then the owner is unreachable
	_, err = h.engine.Step(context.Background())
	require.Error(t, err)
	h.hold(t, ctx, "session", "s1")
	_, err = h.pool.Exec(context.Background(), `UPDATE governance.retention_runs SET lease_until = now() - interval '1 second'`)
	require.NoError(t, err)
	h.run.failing = false
	h.drain(t)

	rep, err := h.retention.GetRetentionReport(ctx, &governancev1.GetRetentionReportRequest{})
	require.NoError(t, err)
	msgs := category(t, rep.GetRun(), "messages")
	var want []string
	for i := 1; i < 30; i += 3 {
		want = append(want, fmt.Sprintf("%03d", i))
	}
	require.Equal(t, want, msgs.GetHeldIds())
	require.EqualValues(t, 20, msgs.GetDeleted())
	require.Equal(t, 10, h.run.count("messages"))
}

func TestListHeldScopesAcrossTenants(t *testing.T) {
	t.Parallel()
	h := newEngineHarness(t)
	h.hold(t, admin("t1"), "backup_set", "b1")
	h.hold(t, admin("t2"), "backup_set", "b2")
	released := h.hold(t, admin("t2"), "backup_set", "b3")
	h.hold(t, admin("t2"), "document", "d1")
	_, err := h.holds.ReleaseLegalHold(admin("t2"), &governancev1.ReleaseLegalHoldRequest{HoldId: released.GetHoldId()})
	require.NoError(t, err)
	res, err := h.holds.ListHeldScopes(context.Background(), &governancev1.ListHeldScopesRequest{ScopeType: "backup_set"})
	require.NoError(t, err)
	require.Equal(t, []string{"b1", "b2"}, res.GetScopeIds())
	_, err = h.holds.ListHeldScopes(context.Background(), &governancev1.ListHeldScopesRequest{ScopeType: "planet"})
	requireCode(t, err, apierr.CodeInvalidArgument)
}
