package ops

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	opsv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ops/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/rollouts"
)

// Store holds the rollout controls (schema ops).
type Store struct{ pool *pgxpool.Pool }

// NewStore returns the store over pool.
func NewStore(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// State reads every key that was set.
func (s *Store) State(ctx context.Context) (rollouts.State, error) {
	st := rollouts.State{Kill: map[string]bool{}, Canary: map[string]int32{}}
	rows, err := s.pool.Query(ctx, `SELECT key, kind, value FROM ops.rollouts`)
	if err != nil {
		return st, fmt.Errorf("read rollouts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var key, kind string
		var v int32
		if err := rows.Scan(&key, &kind, &v); err != nil {
			return st, err
		}
		if kind == "kill" {
			st.Kill[key] = v == 1
		} else {
			st.Canary[key] = v
		}
	}
	return st, rows.Err()
}

// Set writes values of kind in one transaction.
func (s *Store) Set(ctx context.Context, kind string, values map[string]int32, by string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for _, key := range slices.Sorted(maps.Keys(values)) {
			if _, err := tx.Exec(ctx, `INSERT INTO ops.rollouts (key, kind, value, updated_by) VALUES ($1, $2, $3, $4)
				ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_by = EXCLUDED.updated_by, updated_at = now()`,
				key, kind, values[key], by); err != nil {
				return fmt.Errorf("set %s: %w", key, err)
			}
		}
		return nil
	})
}

// platformAdmin refuses a caller whose tenant is not among PLATFORM_ADMIN_TENANTS. It
// runs after validation: what the switches are is no secret (GET lists them).
func (s *Server) platformAdmin(ctx context.Context) (principal.Principal, error) {
	return principal.RequirePlatformAdmin(ctx, s.cfg.platformAdmins(), "changing rollouts or running maintenance")
}

func (s *Server) killSwitches(ctx context.Context) (map[string]bool, error) {
	st, err := s.store.State(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, k := range rollouts.KillSwitches {
		out[k] = st.Kill[k]
	}
	return out, nil
}

func (s *Server) canaries(ctx context.Context) (map[string]int32, error) {
	st, err := s.store.State(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int32{}
	for _, k := range rollouts.Canaries {
		out[k] = 100
		if v, ok := st.Canary[k]; ok {
			out[k] = v
		}
	}
	return out, nil
}

// GetKillSwitches lists every switch.
func (s *Server) GetKillSwitches(ctx context.Context, _ *opsv1.GetKillSwitchesRequest) (*opsv1.GetKillSwitchesResponse, error) {
	ks, err := s.killSwitches(ctx)
	if err != nil {
		return nil, err
	}
	return &opsv1.GetKillSwitchesResponse{KillSwitches: ks}, nil
}

// UpdateKillSwitches turns switches on or off.
func (s *Server) UpdateKillSwitches(ctx context.Context, req *opsv1.UpdateKillSwitchesRequest) (*opsv1.UpdateKillSwitchesResponse, error) {
	if len(req.GetKillSwitches()) == 0 {
		return nil, apierr.InvalidArgument("kill_switches", "kill_switches must name at least one switch: "+strings.Join(rollouts.KillSwitches, ", "))
	}
	values := map[string]int32{}
	for k, on := range req.GetKillSwitches() {
		if !rollouts.KnownKill(k) {
			return nil, apierr.InvalidArgument("kill_switches", fmt.Sprintf("%q is not a kill switch (%s)", k, strings.Join(rollouts.KillSwitches, ", ")))
		}
		values[k] = 0
		if on {
			values[k] = 1
		}
	}
	p, err := s.platformAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.store.Set(ctx, "kill", values, p.TenantID+"/"+p.KeyID); err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeRolloutChanged, Outcome: audit.OutcomeSuccess, ResourceType: "kill_switch",
		Metadata: map[string]any{"kill_switches": req.GetKillSwitches()}})
	ks, err := s.killSwitches(ctx)
	if err != nil {
		return nil, err
	}
	return &opsv1.UpdateKillSwitchesResponse{KillSwitches: ks}, nil
}

// GetCanary lists every rollout's percentage.
func (s *Server) GetCanary(ctx context.Context, _ *opsv1.GetCanaryRequest) (*opsv1.GetCanaryResponse, error) {
	c, err := s.canaries(ctx)
	if err != nil {
		return nil, err
	}
	return &opsv1.GetCanaryResponse{CanaryPercentages: c}, nil
}

// UpdateCanary sets rollouts' percentages.
func (s *Server) UpdateCanary(ctx context.Context, req *opsv1.UpdateCanaryRequest) (*opsv1.UpdateCanaryResponse, error) {
	if len(req.GetCanaryPercentages()) == 0 {
		return nil, apierr.InvalidArgument("canary_percentages", "canary_percentages must name at least one rollout: "+strings.Join(rollouts.Canaries, ", "))
	}
	for k, v := range req.GetCanaryPercentages() {
		if !rollouts.KnownCanary(k) {
			return nil, apierr.InvalidArgument("canary_percentages", fmt.Sprintf("%q is not a rollout (%s)", k, strings.Join(rollouts.Canaries, ", ")))
		}
		if v < 0 || v > 100 {
			return nil, apierr.InvalidArgument("canary_percentages", fmt.Sprintf("%s: %d is not a percentage (0..100)", k, v))
		}
	}
	p, err := s.platformAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.store.Set(ctx, "canary", req.GetCanaryPercentages(), p.TenantID+"/"+p.KeyID); err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeRolloutChanged, Outcome: audit.OutcomeSuccess, ResourceType: "canary",
		Metadata: map[string]any{"canary_percentages": req.GetCanaryPercentages()}})
	c, err := s.canaries(ctx)
	if err != nil {
		return nil, err
	}
	return &opsv1.UpdateCanaryResponse{CanaryPercentages: c}, nil
}

// GetRolloutState is the whole state, for the caches.
func (s *Server) GetRolloutState(ctx context.Context, _ *opsv1.GetRolloutStateRequest) (*opsv1.GetRolloutStateResponse, error) {
	st, err := s.store.State(ctx)
	if err != nil {
		return nil, err
	}
	return &opsv1.GetRolloutStateResponse{KillSwitches: st.Kill, CanaryPercentages: st.Canary}, nil
}
