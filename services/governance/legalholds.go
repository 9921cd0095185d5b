package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Codes of legal holds.
const (
	CodeLegalHoldActive   = "LEGAL_HOLD_ACTIVE"
	CodeLegalHoldNotFound = "LEGAL_HOLD_NOT_FOUND"
)

// HoldScopes are the things a hold can cover.
var HoldScopes = []string{"tenant", "document", "session", "user_key", "backup_set"}

// HoldActive is the answer to a destructive request on held data: 409 LEGAL_HOLD_ACTIVE.
func HoldActive(h *governancev1.LegalHold) error {
	return apierr.New(codes.FailedPrecondition, CodeLegalHoldActive,
		fmt.Sprintf("a legal hold (%d, on %s %s) keeps this from being deleted; release the hold first", h.GetHoldId(), h.GetScopeType(), h.GetScopeId()),
		"hold_id", fmt.Sprint(h.GetHoldId()), "scope_type", h.GetScopeType(), "scope_id", h.GetScopeId())
}

// LegalHoldServer implements nexusrag.governance.v1.LegalHoldService.
type LegalHoldServer struct {
	governancev1.UnimplementedLegalHoldServiceServer
	pool  *pgxpool.Pool
	audit Recorder
	log   *slog.Logger
}

// NewLegalHoldServer returns the LegalHoldService over pool.
func NewLegalHoldServer(pool *pgxpool.Pool, rec Recorder, log *slog.Logger) *LegalHoldServer {
	return &LegalHoldServer{pool: pool, audit: rec, log: log}
}

const holdColumns = `hold_id, tenant_id, scope_type, scope_id, reason, created_by, created_at, coalesce(released_by, ''), released_at`

func scanHold(r pgx.CollectableRow) (*governancev1.LegalHold, error) {
	var h governancev1.LegalHold
	var created time.Time
	var released *time.Time
	if err := r.Scan(&h.HoldId, &h.TenantId, &h.ScopeType, &h.ScopeId, &h.Reason, &h.CreatedBy, &created, &h.ReleasedBy, &released); err != nil {
		return nil, err
	}
	h.CreatedAt, h.Active = timestamppb.New(created), released == nil
	if released != nil {
		h.ReleasedAt = timestamppb.New(*released)
	}
	return &h, nil
}

// CreateLegalHold places a hold.
func (s *LegalHoldServer) CreateLegalHold(ctx context.Context, req *governancev1.CreateLegalHoldRequest) (*governancev1.CreateLegalHoldResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	scope, id := req.GetScopeType(), req.GetScopeId()
	switch {
	case !slices.Contains(HoldScopes, scope):
		return nil, apierr.InvalidArgument("scope_type", "scope_type must be tenant, document, session, user_key or backup_set")
	case scope == "tenant" && id == "":
		id = p.TenantID
	case scope == "tenant" && id != p.TenantID:
		return nil, apierr.New(codes.PermissionDenied, apierr.CodeForbidden, "a tenant hold is on the caller's own tenant", "field", "scope_id")
	case id == "" || utf8.RuneCountInString(id) > 256:
		return nil, apierr.InvalidArgument("scope_id", "scope_id must be 1 to 256 characters")
	}
	if n := utf8.RuneCountInString(req.GetReason()); n == 0 || n > 1000 {
		return nil, apierr.InvalidArgument("reason", "reason must be 1 to 1000 characters (a case or matter reference)")
	}
	rows, err := s.pool.Query(ctx, `INSERT INTO governance.legal_holds (tenant_id, scope_type, scope_id, reason, created_by)
		VALUES ($1, $2, $3, $4, $5) RETURNING `+holdColumns, p.TenantID, scope, id, req.GetReason(), p.KeyID)
	if err != nil {
		return nil, fmt.Errorf("create legal hold: %w", err)
	}
	h, err := pgx.CollectExactlyOneRow(rows, scanHold)
	if err != nil {
		return nil, fmt.Errorf("create legal hold: %w", err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeLegalHoldCreated, Outcome: audit.OutcomeSuccess, ResourceType: "legal_hold", ResourceID: fmt.Sprint(h.GetHoldId()),
		Metadata: map[string]any{"scope_type": scope, "scope_id": id}})
	return &governancev1.CreateLegalHoldResponse{LegalHold: h}, nil
}

// ReleaseLegalHold ends a hold; a released one is answered as it is.
func (s *LegalHoldServer) ReleaseLegalHold(ctx context.Context, req *governancev1.ReleaseLegalHoldRequest) (*governancev1.ReleaseLegalHoldResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `UPDATE governance.legal_holds SET released_at = coalesce(released_at, now()), released_by = coalesce(released_by, $3)
		WHERE tenant_id = $1 AND hold_id = $2 RETURNING `+holdColumns, p.TenantID, req.GetHoldId(), p.KeyID)
	if err != nil {
		return nil, fmt.Errorf("release legal hold: %w", err)
	}
	h, err := pgx.CollectExactlyOneRow(rows, scanHold)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apierr.New(codes.NotFound, CodeLegalHoldNotFound, fmt.Sprintf("no legal hold %d in this tenant", req.GetHoldId()), "hold_id", fmt.Sprint(req.GetHoldId()))
	}
	if err != nil {
		return nil, fmt.Errorf("release legal hold: %w", err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeLegalHoldReleased, Outcome: audit.OutcomeSuccess, ResourceType: "legal_hold", ResourceID: fmt.Sprint(h.GetHoldId()),
		Metadata: map[string]any{"scope_type": h.GetScopeType(), "scope_id": h.GetScopeId()}})
	return &governancev1.ReleaseLegalHoldResponse{LegalHold: h}, nil
}

// ListLegalHolds lists the tenant's holds.
func (s *LegalHoldServer) ListLegalHolds(ctx context.Context, req *governancev1.ListLegalHoldsRequest) (*governancev1.ListLegalHoldsResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+holdColumns+` FROM governance.legal_holds WHERE tenant_id = $1 AND ($2 OR released_at IS NULL)
		ORDER BY released_at IS NOT NULL, created_at DESC, hold_id DESC LIMIT 1000`, p.TenantID, req.GetIncludeReleased())
	if err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	holds, err := pgx.CollectRows(rows, scanHold)
	if err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	return &governancev1.ListLegalHoldsResponse{LegalHolds: holds}, nil
}

// CheckLegalHold answers the active hold covering any of the scopes (or the tenant).
func (s *LegalHoldServer) CheckLegalHold(ctx context.Context, req *governancev1.CheckLegalHoldRequest) (*governancev1.CheckLegalHoldResponse, error) {
	if req.GetTenantId() == "" {
		return nil, apierr.InvalidArgument("tenant_id", "tenant_id is required")
	}
	types, ids := []string{"tenant"}, []string{req.GetTenantId()}
	for _, sc := range req.GetScopes() {
		types, ids = append(types, sc.GetScopeType()), append(ids, sc.GetScopeId())
	}
	rows, err := s.pool.Query(ctx, `SELECT `+holdColumns+` FROM governance.legal_holds h
		JOIN unnest($2::text[], $3::text[]) AS s(st, sid) ON h.scope_type = s.st AND h.scope_id = s.sid
		WHERE h.tenant_id = $1 AND h.released_at IS NULL ORDER BY h.hold_id LIMIT 1`, req.GetTenantId(), types, ids)
	if err != nil {
		return nil, fmt.Errorf("check legal holds: %w", err)
	}
	holds, err := pgx.CollectRows(rows, scanHold)
	if err != nil || len(holds) == 0 {
		return &governancev1.CheckLegalHoldResponse{}, err
	}
	return &governancev1.CheckLegalHoldResponse{Held: holds[0]}, nil
}

// ListHeldScopes lists the ids an active hold of the scope type keeps, in every tenant.
func (s *LegalHoldServer) ListHeldScopes(ctx context.Context, req *governancev1.ListHeldScopesRequest) (*governancev1.ListHeldScopesResponse, error) {
	if !slices.Contains(HoldScopes, req.GetScopeType()) {
		return nil, apierr.InvalidArgument("scope_type", "scope_type must be tenant, document, session, user_key or backup_set")
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT scope_id FROM governance.legal_holds WHERE scope_type = $1 AND released_at IS NULL ORDER BY 1`, req.GetScopeType())
	if err != nil {
		return nil, fmt.Errorf("held scopes: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("held scopes: %w", err)
	}
	return &governancev1.ListHeldScopesResponse{ScopeIds: ids}, nil
}
