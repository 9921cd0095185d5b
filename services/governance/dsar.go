package governance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/dataowner"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Codes of DSARs.
const (
	CodeDsarNotFound          = "DSAR_NOT_FOUND"
	CodeDsarRequiresApproval  = "DSAR_REQUIRES_APPROVAL"
	CodeDsarNotReady          = "DSAR_NOT_READY"
	CodeDsarFailed            = "DSAR_FAILED"
	CodeDsarSelfApproval      = "DSAR_SELF_APPROVAL"
	CodeDsarNotPendingApprove = "DSAR_NOT_PENDING_APPROVAL"
	CodeDsarTooLarge          = "DSAR_EXPORT_TOO_LARGE"
	CodeDsarSubjectBusy       = "DSAR_SUBJECT_BUSY"
)

// DSAR request types and statuses.
const (
	dsarExport    = "export"
	dsarDelete    = "delete"
	dsarAnonymize = "anonymize"

	dsarPendingApproval = "pending_approval"
	dsarQueued          = "queued"
	dsarCompleted       = "completed"
	dsarFailed          = "failed"
)

// MaxExportBytes bounds an export's artifact.
const MaxExportBytes = 64 << 20

// dsarTables are the tables about each kind of subject, in purge order: a session's rows
// before the session, the audit log first (it is anonymized, never deleted, by a DSAR: the
// trail keeps that something happened, not who or what it was about).
var dsarTables = map[string][]table{
	dataowner.SubjectSession:  {tableAudit, tableMessages, tableCheckpoints, tableAudio, tableSessions},
	dataowner.SubjectDocument: {tableAudit, tableDocuments},
	dataowner.SubjectUserKey:  {tableAudit},
	dataowner.SubjectTenant:   {tableAudit, tableMessages, tableCheckpoints, tableAudio, tableSessions, tableDocuments},
}

// DsarServer implements nexusrag.governance.v1.DsarService.
type DsarServer struct {
	governancev1.UnimplementedDsarServiceServer
	pool   *pgxpool.Pool
	engine *Engine
	audit  Recorder
	log    *slog.Logger
}

// NewDsarServer returns the DsarService; engine carries requests out.
func NewDsarServer(pool *pgxpool.Pool, engine *Engine, rec Recorder, log *slog.Logger) *DsarServer {
	return &DsarServer{pool: pool, engine: engine, audit: rec, log: log}
}

func destructive(requestType string) bool { return requestType != dsarExport }

// CreateDsar records a request: an export is queued, a destructive one awaits approval.
func (s *DsarServer) CreateDsar(ctx context.Context, req *governancev1.CreateDsarRequest) (*governancev1.CreateDsarResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	subject := req.GetSubjectId()
	switch {
	case !slices.Contains([]string{dsarExport, dsarDelete, dsarAnonymize}, req.GetRequestType()):
		return nil, apierr.InvalidArgument("request_type", "request_type must be export, delete or anonymize")
	case !slices.Contains(dataowner.SubjectTypes, req.GetSubjectType()):
		return nil, apierr.InvalidArgument("subject_type", "subject_type must be session, user_key, document or tenant")
	case req.GetSubjectType() == dataowner.SubjectTenant && subject == "":
		subject = p.TenantID
	case req.GetSubjectType() == dataowner.SubjectTenant && subject != p.TenantID:
		return nil, apierr.New(codes.PermissionDenied, apierr.CodeForbidden, "a tenant subject is the caller's own tenant", "field", "subject_id")
	case subject == "" || utf8.RuneCountInString(subject) > 256:
		return nil, apierr.InvalidArgument("subject_id", "subject_id must be 1 to 256 characters")
	}
	if n := utf8.RuneCountInString(req.GetReason()); n == 0 || n > 1000 {
		return nil, apierr.InvalidArgument("reason", "reason must be 1 to 1000 characters (the request's reference)")
	}
	status := dsarQueued
	if destructive(req.GetRequestType()) {
		status = dsarPendingApproval
		if err := s.checkSubjectHold(ctx, p.TenantID, req.GetSubjectType(), subject); err != nil {
			return nil, err
		}
	}
	var id int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO governance.dsar_requests (tenant_id, request_type, subject_type, subject_id, reason, status, requested_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING dsar_id`, p.TenantID, req.GetRequestType(), req.GetSubjectType(), subject, req.GetReason(), status, p.KeyID).Scan(&id); err != nil {
		return nil, fmt.Errorf("create dsar: %w", err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeDsarRequested, Outcome: audit.OutcomeSuccess, ResourceType: "dsar", ResourceID: fmt.Sprint(id),
		Metadata: map[string]any{"request_type": req.GetRequestType(), "subject_type": req.GetSubjectType()}})
	if status == dsarQueued {
		s.engine.Wake()
	}
	d, err := s.get(ctx, p.TenantID, id)
	if err != nil {
		return nil, err
	}
	return &governancev1.CreateDsarResponse{Dsar: d}, nil
}

// checkSubjectHold refuses a destructive request on a held subject (or tenant).
func (s *DsarServer) checkSubjectHold(ctx context.Context, tenant, subjectType, subject string) error {
	h, err := s.engine.holds(ctx, tenant)
	if err != nil {
		return err
	}
	if id := h.covers([]scope{{Type: subjectType, ID: subject}}); id != 0 {
		return apierr.New(codes.FailedPrecondition, CodeLegalHoldActive,
			fmt.Sprintf("a legal hold (%d) covers %s %s; release it before a destructive request", id, subjectType, subject), "hold_id", fmt.Sprint(id))
	}
	return nil
}

// ApproveDsar approves a destructive request with a second admin key.
func (s *DsarServer) ApproveDsar(ctx context.Context, req *governancev1.ApproveDsarRequest) (*governancev1.ApproveDsarResponse, error) {
	p, d, err := s.callers(ctx, req.GetDsarId())
	if err != nil {
		return nil, err
	}
	switch {
	case d.GetApprovedBy() != "": // approved already: answered as it is
		return &governancev1.ApproveDsarResponse{Dsar: d}, nil
	case d.GetStatus() != dsarPendingApproval:
		return nil, apierr.New(codes.FailedPrecondition, CodeDsarNotPendingApprove,
			fmt.Sprintf("dsar %d is %s; only a delete or anonymize request awaiting approval is approved", d.GetDsarId(), d.GetStatus()), "status", d.GetStatus())
	case d.GetRequestedBy() == p.KeyID:
		return nil, apierr.New(codes.PermissionDenied, CodeDsarSelfApproval,
			"the key that requested a destructive DSAR cannot approve it: a second admin key of the tenant must", "requested_by", d.GetRequestedBy())
	}
	if err := s.checkSubjectHold(ctx, p.TenantID, d.GetSubjectType(), d.GetSubjectId()); err != nil {
		return nil, err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE governance.dsar_requests SET status = 'queued', approved_by = $3, approved_at = now()
		WHERE tenant_id = $1 AND dsar_id = $2 AND status = 'pending_approval'`, p.TenantID, d.GetDsarId(), p.KeyID); err != nil {
		return nil, fmt.Errorf("approve dsar %d: %w", d.GetDsarId(), err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeDsarApproved, Outcome: audit.OutcomeSuccess, ResourceType: "dsar", ResourceID: fmt.Sprint(d.GetDsarId()),
		Metadata: map[string]any{"request_type": d.GetRequestType(), "requested_by": d.GetRequestedBy()}})
	s.engine.Wake()
	if d, err = s.get(ctx, p.TenantID, d.GetDsarId()); err != nil {
		return nil, err
	}
	return &governancev1.ApproveDsarResponse{Dsar: d}, nil
}

// GetDsar answers a request of the tenant.
func (s *DsarServer) GetDsar(ctx context.Context, req *governancev1.GetDsarRequest) (*governancev1.GetDsarResponse, error) {
	_, d, err := s.callers(ctx, req.GetDsarId())
	if err != nil {
		return nil, err
	}
	return &governancev1.GetDsarResponse{Dsar: d}, nil
}

// ListDsars lists the tenant's latest 1000 requests.
func (s *DsarServer) ListDsars(ctx context.Context, _ *governancev1.ListDsarsRequest) (*governancev1.ListDsarsResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := readDsars(ctx, s.pool, `tenant_id = $1 ORDER BY dsar_id DESC LIMIT 1000`, p.TenantID)
	if err != nil {
		return nil, err
	}
	return &governancev1.ListDsarsResponse{Dsars: ds}, nil
}

// GetDsarArtifact returns a completed request's files and manifest.
func (s *DsarServer) GetDsarArtifact(ctx context.Context, req *governancev1.GetDsarArtifactRequest) (*governancev1.GetDsarArtifactResponse, error) {
	_, d, err := s.callers(ctx, req.GetDsarId())
	if err != nil {
		return nil, err
	}
	switch d.GetStatus() {
	case dsarPendingApproval:
		return nil, apierr.New(codes.FailedPrecondition, CodeDsarRequiresApproval,
			fmt.Sprintf("dsar %d (%s) needs a second admin's approval: POST /v1/admin/governance/dsar/%d/approve with another admin key", d.GetDsarId(), d.GetRequestType(), d.GetDsarId()),
			"dsar_id", fmt.Sprint(d.GetDsarId()))
	case dsarFailed:
		return nil, apierr.New(codes.FailedPrecondition, CodeDsarFailed, fmt.Sprintf("dsar %d failed: %s", d.GetDsarId(), d.GetErrorMessage()),
			"dsar_id", fmt.Sprint(d.GetDsarId()), "error_code", d.GetErrorCode())
	case dsarCompleted:
	default:
		return nil, apierr.New(codes.FailedPrecondition, CodeDsarNotReady, fmt.Sprintf("dsar %d is %s; poll it until completed", d.GetDsarId(), d.GetStatus()),
			"dsar_id", fmt.Sprint(d.GetDsarId()), "status", d.GetStatus())
	}
	rows, err := s.pool.Query(ctx, `SELECT name, content FROM governance.dsar_artifact_files WHERE dsar_id = $1 ORDER BY ord`, d.GetDsarId())
	if err != nil {
		return nil, fmt.Errorf("dsar %d artifact: %w", d.GetDsarId(), err)
	}
	files, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.DsarArtifactFile, error) {
		var f governancev1.DsarArtifactFile
		return &f, r.Scan(&f.Name, &f.Ndjson)
	})
	if err != nil {
		return nil, fmt.Errorf("dsar %d artifact: %w", d.GetDsarId(), err)
	}
	m, err := s.manifest(ctx, d)
	if err != nil {
		return nil, err
	}
	return &governancev1.GetDsarArtifactResponse{Manifest: m, Files: files}, nil
}

func (s *DsarServer) manifest(ctx context.Context, d *governancev1.Dsar) (*governancev1.DsarManifest, error) {
	m := &governancev1.DsarManifest{DsarId: d.GetDsarId(), TenantId: d.GetTenantId(), RequestType: d.GetRequestType(), SubjectType: d.GetSubjectType(),
		SubjectId: d.GetSubjectId(), GeneratedAt: d.GetFinishedAt()}
	files, sum, err := artifactManifest(ctx, s.pool, d.GetDsarId())
	if err != nil {
		return nil, err
	}
	m.Files, m.Sha256 = files, sum
	return m, nil
}

// artifactManifest lists a request's files and the manifest checksum: SHA-256 over the
// lines "name rows sha256\n" in file order.
func artifactManifest(ctx context.Context, db interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, id int64) ([]*governancev1.DsarManifestEntry, string, error) {
	rows, err := db.Query(ctx, `SELECT name, rows, octet_length(content), sha256 FROM governance.dsar_artifact_files WHERE dsar_id = $1 ORDER BY ord`, id)
	if err != nil {
		return nil, "", fmt.Errorf("dsar %d manifest: %w", id, err)
	}
	entries, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.DsarManifestEntry, error) {
		var e governancev1.DsarManifestEntry
		return &e, r.Scan(&e.Name, &e.Rows, &e.Bytes, &e.Sha256)
	})
	if err != nil {
		return nil, "", fmt.Errorf("dsar %d manifest: %w", id, err)
	}
	return entries, ManifestSum(entries), nil
}

// ManifestSum is the manifest checksum over its entries.
func ManifestSum(entries []*governancev1.DsarManifestEntry) string {
	h := sha256.New()
	for _, e := range entries {
		fmt.Fprintf(h, "%s %d %s\n", e.GetName(), e.GetRows(), e.GetSha256())
	}
	return hex.EncodeToString(h.Sum(nil))
}

// callers reads the caller and a request of the caller's tenant (DSAR_NOT_FOUND otherwise).
func (s *DsarServer) callers(ctx context.Context, id int64) (principal.Principal, *governancev1.Dsar, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return p, nil, err
	}
	d, err := s.get(ctx, p.TenantID, id)
	return p, d, err
}

func (s *DsarServer) get(ctx context.Context, tenant string, id int64) (*governancev1.Dsar, error) {
	ds, err := readDsars(ctx, s.pool, `tenant_id = $1 AND dsar_id = $2`, tenant, id)
	if err != nil {
		return nil, err
	}
	if len(ds) == 0 {
		return nil, apierr.New(codes.NotFound, CodeDsarNotFound, fmt.Sprintf("no dsar %d in this tenant", id), "dsar_id", fmt.Sprint(id))
	}
	return ds[0], nil
}

func readDsars(ctx context.Context, pool *pgxpool.Pool, where string, args ...any) ([]*governancev1.Dsar, error) {
	rows, err := pool.Query(ctx, `SELECT dsar_id, tenant_id, request_type, subject_type, subject_id, reason, status, requested_by, approved_by,
		created_at, approved_at, finished_at, error_code, error_message, results,
		(SELECT string_agg(name || ' ' || rows || ' ' || sha256 || E'\n', '' ORDER BY ord) FROM governance.dsar_artifact_files f WHERE f.dsar_id = d.dsar_id)
		FROM governance.dsar_requests d WHERE `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("read dsars: %w", err)
	}
	ds, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.Dsar, error) {
		var d governancev1.Dsar
		var created time.Time
		var approved, finished *time.Time
		var results []byte
		var lines *string
		if err := r.Scan(&d.DsarId, &d.TenantId, &d.RequestType, &d.SubjectType, &d.SubjectId, &d.Reason, &d.Status, &d.RequestedBy, &d.ApprovedBy,
			&created, &approved, &finished, &d.ErrorCode, &d.ErrorMessage, &results, &lines); err != nil {
			return nil, err
		}
		d.CreatedAt = timestamppb.New(created)
		if approved != nil {
			d.ApprovedAt = timestamppb.New(*approved)
		}
		if finished != nil {
			d.FinishedAt = timestamppb.New(*finished)
		}
		var rs []tableResult
		if err := json.Unmarshal(results, &rs); err != nil {
			return nil, fmt.Errorf("dsar %d results: %w", d.DsarId, err)
		}
		for _, t := range rs {
			d.Results = append(d.Results, &governancev1.DsarTableResult{Table: t.Table, Rows: t.Rows, Exported: t.Exported, Deleted: t.Deleted, Anonymized: t.Anonymized})
		}
		if lines != nil && d.Status == dsarCompleted {
			sum := sha256.Sum256([]byte(*lines))
			d.ArtifactSha256 = hex.EncodeToString(sum[:])
		}
		return &d, nil
	})
	if err != nil {
		return nil, fmt.Errorf("read dsars: %w", err)
	}
	return ds, nil
}

// tableResult is one element of dsar_requests.results.
type tableResult struct {
	Table      string `json:"table"`
	Rows       int64  `json:"rows"`
	Exported   int64  `json:"exported"`
	Deleted    int64  `json:"deleted"`
	Anonymized int64  `json:"anonymized"`
}

// claimedDsar is a request this replica holds the lease of.
type claimedDsar struct {
	id                                      int64
	tenant, requestType, subjectType, subID string
	planned                                 bool
	attempts                                int
}

func (e *Engine) claimDsar(ctx context.Context) (claimedDsar, bool, error) {
	var d claimedDsar
	err := e.pool.QueryRow(ctx, `UPDATE governance.dsar_requests SET status = 'running', lease_until = now() + $1::interval, attempts = attempts + 1
		WHERE dsar_id = (SELECT dsar_id FROM governance.dsar_requests WHERE status IN ('queued', 'running')
			AND (lease_until IS NULL OR lease_until < now()) ORDER BY dsar_id LIMIT 1 FOR UPDATE SKIP LOCKED)
		RETURNING dsar_id, tenant_id, request_type, subject_type, subject_id, planned, attempts`, e.Lease.String()).
		Scan(&d.id, &d.tenant, &d.requestType, &d.subjectType, &d.subID, &d.planned, &d.attempts)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	if err != nil {
		return d, false, fmt.Errorf("claim a dsar: %w", err)
	}
	return d, true, nil
}

// dsarError is a request's failure with a code for the requester; a retryable one is tried
// again (after the lease lapses) until MaxAttempts.
type dsarError struct {
	code, msg string
	retry     bool
}

func (e *dsarError) Error() string { return e.code + ": " + e.msg }

// runDsar carries a request out: it writes the artifact (rows, or the ids to purge) first,
// then, for a destructive request, purges exactly those ids. A resumed request keeps its
// artifact and purges again, which changes nothing twice.
func (e *Engine) runDsar(ctx context.Context, d claimedDsar) error {
	results, err := e.dsar(ctx, d)
	var de *dsarError
	if err != nil && !errors.As(err, &de) {
		de = &dsarError{code: "DSAR_INTERNAL", msg: err.Error(), retry: true}
	}
	if de != nil && de.retry {
		if d.attempts < e.MaxAttempts || ctx.Err() != nil {
			return fmt.Errorf("dsar %d: %w", d.id, err)
		}
		de.msg = fmt.Sprintf("gave up after %d attempts: %s", d.attempts, de.msg)
	}
	status, code, msg := dsarCompleted, "", ""
	outcome := audit.OutcomeSuccess
	if de != nil {
		status, code, msg, outcome = dsarFailed, de.code, de.msg, audit.OutcomeFailure
	}
	b, _ := json.Marshal(results)
	if _, err := e.pool.Exec(context.WithoutCancel(ctx), `UPDATE governance.dsar_requests SET status = $2, error_code = $3, error_message = $4, results = $5,
		finished_at = now(), lease_until = NULL WHERE dsar_id = $1`, d.id, status, code, msg, b); err != nil {
		return fmt.Errorf("finish dsar %d: %w", d.id, err)
	}
	md := map[string]any{"request_type": d.requestType, "subject_type": d.subjectType}
	if code != "" {
		md["error_code"] = code
	}
	for _, r := range results {
		md[r.Table] = r.Rows
	}
	e.audit.Record(ctx, audit.Event{TenantID: d.tenant, Type: audit.TypeDsarCompleted, Outcome: outcome, ResourceType: "dsar", ResourceID: fmt.Sprint(d.id), Metadata: md})
	return nil
}

func (e *Engine) dsar(ctx context.Context, d claimedDsar) ([]tableResult, error) {
	tables := dsarTables[d.subjectType]
	if !d.planned {
		if err := e.planDsar(ctx, d, tables); err != nil {
			return nil, err
		}
	}
	ids, rows, err := e.dsarFiles(ctx, d.id)
	if err != nil {
		return nil, err
	}
	var results []tableResult
	for _, t := range tables {
		f := ids[t.name]
		r := tableResult{Table: t.name, Rows: rows[t.name]}
		switch {
		case d.requestType == dsarExport:
			r.Exported = r.Rows
		case len(f) > 0:
			mode, anonymized := governancev1.PurgeMode_PURGE_MODE_DELETE, false
			if d.requestType == dsarAnonymize || t == tableAudit {
				mode, anonymized = governancev1.PurgeMode_PURGE_MODE_ANONYMIZE, true
			}
			for chunk := range slices.Chunk(f, purgeBatch) {
				res, err := e.owners[t.owner].Purge(ctx, &governancev1.DataPurge{TenantId: d.tenant, Category: t.category, Ids: chunk, Mode: mode})
				if err != nil {
					return nil, err
				}
				if len(res.GetDeferredIds()) > 0 {
					return nil, &dsarError{code: CodeDsarSubjectBusy, msg: fmt.Sprintf("%s %s is being ingested", t.name, res.GetDeferredIds()[0]), retry: true}
				}
				if err := e.renew(ctx, "dsar_requests", "dsar_id", d.id); err != nil {
					return nil, err
				}
			}
			if anonymized {
				r.Anonymized = r.Rows
			} else {
				r.Deleted = r.Rows
			}
		}
		results = append(results, r)
	}
	return results, nil
}

// planDsar selects every row about the subject from each owner and writes the artifact
// files: the rows for an export, the ids (after checking holds) for a destructive request.
func (e *Engine) planDsar(ctx context.Context, d claimedDsar, tables []table) error {
	holds, err := e.holds(ctx, d.tenant)
	if err != nil {
		return err
	}
	withRows := d.requestType == dsarExport
	type file struct {
		name    string
		rows    int64
		content []byte
	}
	var out []file
	total := 0
	for _, t := range tables {
		owner := e.owners[t.owner]
		if owner == nil {
			return &dsarError{code: "DSAR_OWNER_UNAVAILABLE", msg: fmt.Sprintf("the %s service, which owns %s, is not reachable from governance", t.owner, t.name)}
		}
		var buf bytes.Buffer
		var n int64
		after := ""
		for {
			sel, err := owner.Select(ctx, &governancev1.DataQuery{TenantId: d.tenant, Category: t.category, SubjectType: d.subjectType, SubjectId: d.subID,
				AfterId: after, Limit: dataowner.MaxPage, WithRows: withRows})
			if err != nil {
				return err
			}
			for _, it := range sel.GetItems() {
				if withRows {
					buf.WriteString(it.GetRowJson())
				} else {
					if h := holds.covers(scopesOf(it)); h != 0 {
						return &dsarError{code: CodeLegalHoldActive, msg: fmt.Sprintf("legal hold %d covers %s row %s; nothing was changed", h, t.name, it.GetId())}
					}
					line, _ := json.Marshal(map[string]string{"id": it.GetId(), "action": map[string]string{dsarDelete: "delete", dsarAnonymize: "anonymize"}[d.requestType]})
					if t == tableAudit {
						line, _ = json.Marshal(map[string]string{"id": it.GetId(), "action": "anonymize"})
					}
					buf.Write(line)
				}
				buf.WriteByte('\n')
				n++
			}
			if total+buf.Len() > MaxExportBytes {
				return &dsarError{code: CodeDsarTooLarge, msg: fmt.Sprintf("the artifact would exceed %d MiB; request smaller subjects", MaxExportBytes>>20)}
			}
			if sel.GetNextAfterId() == "" {
				break
			}
			after = sel.GetNextAfterId()
		}
		total += buf.Len()
		name := t.name + ".ndjson"
		if !withRows {
			name = t.name + ".ids.ndjson"
		}
		out = append(out, file{name: name, rows: n, content: buf.Bytes()})
		if err := e.renew(ctx, "dsar_requests", "dsar_id", d.id); err != nil {
			return err
		}
	}
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM governance.dsar_artifact_files WHERE dsar_id = $1`, d.id); err != nil {
			return err
		}
		for i, f := range out {
			sum := sha256.Sum256(f.content)
			if _, err := tx.Exec(ctx, `INSERT INTO governance.dsar_artifact_files (dsar_id, name, ord, rows, sha256, content) VALUES ($1, $2, $3, $4, $5, $6)`,
				d.id, f.name, i, f.rows, hex.EncodeToString(sum[:]), string(f.content)); err != nil {
				return err
			}
		}
		_, err := tx.Exec(ctx, `UPDATE governance.dsar_requests SET planned = true WHERE dsar_id = $1`, d.id)
		return err
	})
}

// dsarFiles reads a request's artifact: the rows each table's file counts, and, for a
// destructive request, the planned ids (an export's rows are not read again).
func (e *Engine) dsarFiles(ctx context.Context, id int64) (ids map[string][]string, rows map[string]int64, err error) {
	res, err := e.pool.Query(ctx, `SELECT name, rows, CASE WHEN name LIKE '%.ids.ndjson' THEN content ELSE '' END
		FROM governance.dsar_artifact_files WHERE dsar_id = $1`, id)
	if err != nil {
		return nil, nil, err
	}
	ids, rows = map[string][]string{}, map[string]int64{}
	var name, content string
	var n int64
	_, err = pgx.ForEachRow(res, []any{&name, &n, &content}, func() error {
		table, planned := strings.CutSuffix(name, ".ids.ndjson")
		if !planned {
			table = strings.TrimSuffix(name, ".ndjson")
		}
		rows[table] = n
		for line := range strings.Lines(content) {
			var v struct{ ID string }
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ids[table] = append(ids[table], v.ID)
		}
		return nil
	})
	return ids, rows, err
}
