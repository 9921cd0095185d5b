package governance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/policy"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// maxPoliciesPerTenant bounds a tenant's rules (each request is checked against all).
const maxPoliciesPerTenant = 500

// CodePolicyNotFound answers an unknown policy id (of the caller's tenant).
const CodePolicyNotFound = "POLICY_NOT_FOUND"

// PolicyServer implements nexusrag.governance.v1.PolicyService.
type PolicyServer struct {
	governancev1.UnimplementedPolicyServiceServer
	pool  *pgxpool.Pool
	audit Recorder
	log   *slog.Logger
}

// Recorder is where the service sends audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// NewPolicyServer returns the PolicyService over pool.
func NewPolicyServer(pool *pgxpool.Pool, rec Recorder, log *slog.Logger) *PolicyServer {
	return &PolicyServer{pool: pool, audit: rec, log: log}
}

const policyColumns = `policy_id, tenant_id, rule_key, enabled, priority, condition_json, action_json, created_at, updated_at`

func scanPolicy(r pgx.CollectableRow) (*governancev1.Policy, error) {
	var p governancev1.Policy
	var cond, act []byte
	var created, updated time.Time
	if err := r.Scan(&p.PolicyId, &p.TenantId, &p.RuleKey, &p.Enabled, &p.Priority, &cond, &act, &created, &updated); err != nil {
		return nil, err
	}
	p.ConditionJson, p.ActionJson = &governancev1.PolicyCondition{}, &governancev1.PolicyAction{}
	if err := storedJSON.Unmarshal(cond, p.ConditionJson); err != nil {
		return nil, fmt.Errorf("policy %d condition: %w", p.PolicyId, err)
	}
	if err := storedJSON.Unmarshal(act, p.ActionJson); err != nil {
		return nil, fmt.Errorf("policy %d action: %w", p.PolicyId, err)
	}
	p.CreatedAt, p.UpdatedAt = timestamppb.New(created), timestamppb.New(updated)
	return &p, nil
}

// storedJSON is how conditions and actions are kept in their jsonb columns: the
// contract's messages with its field names.
var storedJSON = struct {
	protojson.MarshalOptions
	protojson.UnmarshalOptions
}{protojson.MarshalOptions{UseProtoNames: true}, protojson.UnmarshalOptions{DiscardUnknown: true}}

// normalized validates condition and action and returns them, normalized, as stored JSON.
func normalized(cond *governancev1.PolicyCondition, act *governancev1.PolicyAction) ([]byte, []byte, error) {
	c, a, err := policy.FromProto(cond, act)
	if err != nil {
		return nil, nil, err
	}
	pc, pa := policy.ToProto(c, a)
	cj, err := storedJSON.Marshal(pc)
	if err != nil {
		return nil, nil, err
	}
	aj, err := storedJSON.Marshal(pa)
	return cj, aj, err
}

// changePolicies runs fn and bumps the revision in one transaction.
func (s *PolicyServer) changePolicies(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE governance.policy_revision SET revision = revision + 1`)
		return err
	})
}

// CreatePolicy adds a rule of the caller's tenant.
func (s *PolicyServer) CreatePolicy(ctx context.Context, req *governancev1.CreatePolicyRequest) (*governancev1.CreatePolicyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if !policy.ValidKey(req.GetRuleKey()) {
		return nil, apierr.InvalidArgument("rule_key", "rule_key must be 1 to 100 of letters, digits, . _ -")
	}
	cj, aj, err := normalized(req.GetConditionJson(), req.GetActionJson())
	if err != nil {
		return nil, err
	}
	enabled := req.Enabled == nil || req.GetEnabled()
	var out *governancev1.Policy
	err = s.changePolicies(ctx, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM governance.policies WHERE tenant_id = $1`, p.TenantID).Scan(&n); err != nil {
			return err
		}
		if n >= maxPoliciesPerTenant {
			return apierr.New(codes.FailedPrecondition, "POLICY_LIMIT_REACHED", fmt.Sprintf("a tenant has at most %d policies", maxPoliciesPerTenant))
		}
		rows, err := tx.Query(ctx, `INSERT INTO governance.policies (tenant_id, rule_key, enabled, priority, condition_json, action_json)
			VALUES ($1, $2, $3, $4, $5, $6) RETURNING `+policyColumns, p.TenantID, req.GetRuleKey(), enabled, req.GetPriority(), cj, aj)
		if err != nil {
			return err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanPolicy)
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return nil, apierr.New(codes.AlreadyExists, "POLICY_EXISTS", "the tenant has a policy "+req.GetRuleKey()+" already", "field", "rule_key")
	}
	if err != nil {
		return nil, err
	}
	s.changed(ctx, "created", out)
	return &governancev1.CreatePolicyResponse{Policy: out}, nil
}

// ListPolicies lists the caller's tenant's rules in evaluation order.
func (s *PolicyServer) ListPolicies(ctx context.Context, _ *governancev1.ListPoliciesRequest) (*governancev1.ListPoliciesResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT `+policyColumns+` FROM governance.policies WHERE tenant_id = $1 ORDER BY priority DESC, policy_id`, p.TenantID)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	out, err := pgx.CollectRows(rows, scanPolicy)
	if err != nil {
		return nil, fmt.Errorf("list policies: %w", err)
	}
	return &governancev1.ListPoliciesResponse{Policies: out}, nil
}

// UpdatePolicy changes the fields given of a rule of the caller's tenant.
func (s *PolicyServer) UpdatePolicy(ctx context.Context, req *governancev1.UpdatePolicyRequest) (*governancev1.UpdatePolicyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	var cj, aj []byte
	if req.GetConditionJson() != nil || req.GetActionJson() != nil {
		cur, err := s.get(ctx, p.TenantID, req.GetPolicyId())
		if err != nil {
			return nil, err
		}
		cond, act := cur.GetConditionJson(), cur.GetActionJson()
		if req.GetConditionJson() != nil {
			cond = req.GetConditionJson()
		}
		if req.GetActionJson() != nil {
			act = req.GetActionJson()
		}
		if cj, aj, err = normalized(cond, act); err != nil {
			return nil, err
		}
	}
	out, err := s.changeOne(ctx, req.GetPolicyId(), `UPDATE governance.policies SET enabled = coalesce($3, enabled), priority = coalesce($4, priority),
			condition_json = coalesce($5, condition_json), action_json = coalesce($6, action_json), updated_at = now()
		WHERE tenant_id = $1 AND policy_id = $2 RETURNING `+policyColumns, p.TenantID, req.GetPolicyId(), req.Enabled, req.Priority, cj, aj)
	if err != nil {
		return nil, err
	}
	s.changed(ctx, "updated", out)
	return &governancev1.UpdatePolicyResponse{Policy: out}, nil
}

// DeletePolicy removes a rule of the caller's tenant.
func (s *PolicyServer) DeletePolicy(ctx context.Context, req *governancev1.DeletePolicyRequest) (*governancev1.DeletePolicyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	out, err := s.changeOne(ctx, req.GetPolicyId(), `DELETE FROM governance.policies WHERE tenant_id = $1 AND policy_id = $2 RETURNING `+policyColumns,
		p.TenantID, req.GetPolicyId())
	if err != nil {
		return nil, err
	}
	s.changed(ctx, "deleted", out)
	return &governancev1.DeletePolicyResponse{}, nil
}

// changeOne runs a statement that returns the one rule it changed, with the revision
// bump; no rule: POLICY_NOT_FOUND.
func (s *PolicyServer) changeOne(ctx context.Context, id int64, sql string, args ...any) (*governancev1.Policy, error) {
	var out *governancev1.Policy
	err := s.changePolicies(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, args...)
		if err != nil {
			return err
		}
		out, err = pgx.CollectExactlyOneRow(rows, scanPolicy)
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	return out, err
}

func (s *PolicyServer) get(ctx context.Context, tenant string, id int64) (*governancev1.Policy, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+policyColumns+` FROM governance.policies WHERE tenant_id = $1 AND policy_id = $2`, tenant, id)
	if err != nil {
		return nil, err
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanPolicy)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, notFound(id)
	}
	return p, err
}

func notFound(id int64) error {
	return apierr.New(codes.NotFound, CodePolicyNotFound, fmt.Sprintf("no policy %d in this tenant", id), "policy_id", fmt.Sprint(id))
}

func (s *PolicyServer) changed(ctx context.Context, what string, p *governancev1.Policy) {
	s.audit.Record(ctx, audit.Event{Type: audit.TypePolicyChanged, Outcome: audit.OutcomeSuccess, ResourceType: "policy", ResourceID: p.GetRuleKey(),
		Metadata: map[string]any{"change": what, "policy_id": p.GetPolicyId(), "enabled": p.GetEnabled(), "priority": p.GetPriority()}})
}

// GetPolicySnapshot is every enabled rule when something changed after known_revision.
func (s *PolicyServer) GetPolicySnapshot(ctx context.Context, req *governancev1.GetPolicySnapshotRequest) (*governancev1.GetPolicySnapshotResponse, error) {
	out := &governancev1.GetPolicySnapshotResponse{}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT revision FROM governance.policy_revision`).Scan(&out.Revision); err != nil {
			return err
		}
		if out.Revision == req.GetKnownRevision() {
			return nil
		}
		out.Changed = true
		rows, err := tx.Query(ctx, `SELECT `+policyColumns+` FROM governance.policies WHERE enabled`)
		if err != nil {
			return err
		}
		out.Policies, err = pgx.CollectRows(rows, scanPolicy)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("policy snapshot: %w", err)
	}
	return out, nil
}
