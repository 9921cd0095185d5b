package governance

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// CodeReportUnavailable answers a governance report whose data could not be read.
const CodeReportUnavailable = "GOVERNANCE_REPORT_UNAVAILABLE"

// ReportServer implements nexusrag.governance.v1.GovernanceReportService.
type ReportServer struct {
	governancev1.UnimplementedGovernanceReportServiceServer
	pool *pgxpool.Pool
	log  *slog.Logger
	now  func() time.Time
}

// NewReportServer returns the GovernanceReportService over pool.
func NewReportServer(pool *pgxpool.Pool, log *slog.Logger) *ReportServer {
	return &ReportServer{pool: pool, log: log, now: time.Now}
}

// unavailable is the answer when a report's data cannot be read: never a partial report.
func (s *ReportServer) unavailable(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	s.log.Warn("governance report unavailable", "report", what, "err", err)
	return apierr.New(codes.Unavailable, CodeReportUnavailable,
		fmt.Sprintf("the governance %s cannot be assembled now (its data could not be read); retry shortly", what), "report", what)
}

// GetGovernanceStatus summarizes the tenant's governance now.
func (s *ReportServer) GetGovernanceStatus(ctx context.Context, _ *governancev1.GetGovernanceStatusRequest) (*governancev1.GetGovernanceStatusResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	out := &governancev1.GetGovernanceStatusResponse{TenantId: p.TenantID, GeneratedAt: timestamppb.New(s.now())}
	err = s.pool.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM governance.policies WHERE tenant_id = $1),
			(SELECT count(*) FROM governance.policies WHERE tenant_id = $1 AND enabled),
			(SELECT count(*) FROM governance.legal_holds WHERE tenant_id = $1 AND released_at IS NULL),
			EXISTS (SELECT 1 FROM governance.retention_policies WHERE tenant_id = $1),
			(SELECT count(*) FROM governance.dsar_requests WHERE tenant_id = $1 AND status IN ('pending_approval', 'queued', 'running')),
			(SELECT count(*) FROM governance.dsar_requests WHERE tenant_id = $1 AND status = 'pending_approval')`, p.TenantID).
		Scan(&out.PoliciesTotal, &out.PoliciesEnabled, &out.ActiveLegalHolds, &out.RetentionPolicySet, &out.PendingDsars, &out.DsarsAwaitingApproval)
	if err != nil {
		return nil, s.unavailable(ctx, "status", err)
	}
	if out.LatestRetentionRuns, err = readRuns(ctx, s.pool, `r.tenant_id = $1 AND r.run_id IN
		(SELECT run_id FROM governance.retention_runs WHERE tenant_id = $1 ORDER BY run_id DESC LIMIT 5)`, p.TenantID); err != nil {
		return nil, s.unavailable(ctx, "status", err)
	}
	return out, nil
}

// GetGovernanceEvidence counts what governance did over a window, with a checksum over the
// figures.
func (s *ReportServer) GetGovernanceEvidence(ctx context.Context, req *governancev1.GetGovernanceEvidenceRequest) (*governancev1.GetGovernanceEvidenceResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	days := req.GetWindowDays()
	if days == 0 {
		days = 30
	}
	if days < 1 || days > 366 {
		return nil, apierr.InvalidArgument("window_days", "window_days must be 1 to 366")
	}
	end := s.now().UTC()
	start := end.Add(-time.Duration(days) * 24 * time.Hour)
	out := &governancev1.GetGovernanceEvidenceResponse{TenantId: p.TenantID, WindowDays: days, WindowStart: timestamppb.New(start),
		WindowEnd: timestamppb.New(end), GeneratedAt: timestamppb.New(end)}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// One snapshot: every figure is of the same moment.
		counts := func(sql string) ([]*governancev1.EvidenceCount, int64, error) {
			rows, err := tx.Query(ctx, sql, p.TenantID, start, end)
			if err != nil {
				return nil, 0, err
			}
			var total int64
			cs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*governancev1.EvidenceCount, error) {
				var c governancev1.EvidenceCount
				err := r.Scan(&c.Key, &c.Count)
				total += c.Count
				return &c, err
			})
			return cs, total, err
		}
		var err error
		if out.AuditEventsByType, out.AuditEventsTotal, err = counts(`SELECT event_type, count(*) FROM governance.audit_events
			WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY event_type ORDER BY event_type`); err != nil {
			return err
		}
		if out.DsarsByTypeAndStatus, _, err = counts(`SELECT request_type || '.' || status, count(*) FROM governance.dsar_requests
			WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 GROUP BY 1 ORDER BY 1`); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `SELECT
				(SELECT count(*) FROM governance.retention_runs WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3),
				(SELECT count(*) FROM governance.retention_runs WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3 AND status = 'failed'),
				(SELECT count(*) FILTER (WHERE i.outcome = 'deleted') FROM governance.retention_items i JOIN governance.retention_runs r USING (run_id)
					WHERE r.tenant_id = $1 AND r.created_at >= $2 AND r.created_at < $3),
				(SELECT count(*) FILTER (WHERE i.outcome = 'anonymized') FROM governance.retention_items i JOIN governance.retention_runs r USING (run_id)
					WHERE r.tenant_id = $1 AND r.created_at >= $2 AND r.created_at < $3),
				(SELECT count(*) FROM governance.legal_holds WHERE tenant_id = $1 AND created_at >= $2 AND created_at < $3),
				(SELECT count(*) FROM governance.legal_holds WHERE tenant_id = $1 AND released_at >= $2 AND released_at < $3),
				(SELECT count(*) FROM governance.legal_holds WHERE tenant_id = $1 AND released_at IS NULL),
				(SELECT count(*) FROM governance.policies WHERE tenant_id = $1)`, p.TenantID, start, end).
			Scan(&out.RetentionRuns, &out.RetentionRunsFailed, &out.RowsDeletedByRetention, &out.RowsAnonymizedByRetention,
				&out.LegalHoldsCreated, &out.LegalHoldsReleased, &out.LegalHoldsActive, &out.PolicyRules)
	})
	if err != nil {
		return nil, s.unavailable(ctx, "evidence", err)
	}
	out.Sha256 = EvidenceSum(out)
	return out, nil
}

// jsonTime is a timestamp as the JSON answer writes it, so that a reader can recompute the
// checksum from the answer.
func jsonTime(t *timestamppb.Timestamp) string {
	b, _ := protojson.Marshal(t)
	return strings.Trim(string(b), `"`)
}

// EvidenceSum is the checksum of an evidence bundle: SHA-256 over "key value\n" lines of
// every figure, sorted by key.
func EvidenceSum(e *governancev1.GetGovernanceEvidenceResponse) string {
	lines := []string{
		"tenant_id " + e.GetTenantId(),
		"window_start " + jsonTime(e.GetWindowStart()),
		"window_end " + jsonTime(e.GetWindowEnd()),
		fmt.Sprintf("audit_events_total %d", e.GetAuditEventsTotal()),
		fmt.Sprintf("retention_runs %d", e.GetRetentionRuns()),
		fmt.Sprintf("retention_runs_failed %d", e.GetRetentionRunsFailed()),
		fmt.Sprintf("rows_deleted_by_retention %d", e.GetRowsDeletedByRetention()),
		fmt.Sprintf("rows_anonymized_by_retention %d", e.GetRowsAnonymizedByRetention()),
		fmt.Sprintf("legal_holds_created %d", e.GetLegalHoldsCreated()),
		fmt.Sprintf("legal_holds_released %d", e.GetLegalHoldsReleased()),
		fmt.Sprintf("legal_holds_active %d", e.GetLegalHoldsActive()),
		fmt.Sprintf("policy_rules %d", e.GetPolicyRules()),
	}
	for _, c := range e.GetAuditEventsByType() {
		lines = append(lines, fmt.Sprintf("audit.%s %d", c.GetKey(), c.GetCount()))
	}
	for _, c := range e.GetDsarsByTypeAndStatus() {
		lines = append(lines, fmt.Sprintf("dsar.%s %d", c.GetKey(), c.GetCount()))
	}
	slices.Sort(lines)
	h := sha256.New()
	for _, l := range lines {
		h.Write([]byte(l + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))
}
