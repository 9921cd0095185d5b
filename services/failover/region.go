package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	failoverv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/failover/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
)

// Codes of the failover control plane.
const (
	CodeWritesFrozen   = "WRITES_FROZEN"
	CodeRegionReadOnly = "FAILOVER_REGION_READ_ONLY"
)

// gate reads this region's row and its database's recovery state, and decides whether it
// takes writes. A region whose row is missing has its configured role, state idle and no
// freeze.
func (s *Server) gate(ctx context.Context) (*failoverv1.GetFailoverStatusResponse, error) {
	st := &failoverv1.GetFailoverStatusResponse{RegionId: s.cfg.RegionID, Role: s.cfg.RegionRole, State: string(StateIdle)}
	err := s.store.pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&st.DatabaseInRecovery)
	if err != nil {
		return nil, fmt.Errorf("recovery state: %w", err)
	}
	var updated time.Time
	err = s.store.pool.QueryRow(ctx, `SELECT role, state, writes_frozen, freeze_reason, updated_at FROM failover.regions WHERE region_id = $1`, s.cfg.RegionID).
		Scan(&st.Role, &st.State, &st.Freeze, &st.FreezeReason, &updated)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("region %s: %w", s.cfg.RegionID, err)
	default:
		st.UpdatedAt = timestamppb.New(updated)
	}
	if s.rdb != nil { // a failover in flight, recorded here while the database is a standby
		if v, err := s.rdb.Get(ctx, s.key("state", s.cfg.RegionID)).Result(); err == nil {
			st.State = v
		}
	}
	st.WritesAllowed, st.WritesRefusedReason = true, ""
	switch {
	case st.DatabaseInRecovery:
		st.WritesAllowed, st.WritesRefusedReason = false, fmt.Sprintf("region %s's database is a standby (in recovery): writes go to the primary region", st.RegionId)
	case st.Freeze: // before the role: a failover's freeze says which region is taking over
		st.WritesAllowed, st.WritesRefusedReason = false, "writes are frozen: "+st.FreezeReason
	case st.Role != "primary":
		st.WritesAllowed, st.WritesRefusedReason = false, fmt.Sprintf("region %s is a secondary: writes go to the primary region", st.RegionId)
	case WritesFrozen(State(st.State)):
		st.WritesAllowed, st.WritesRefusedReason = false, fmt.Sprintf("a failover of region %s is in progress (%s)", st.RegionId, st.State)
	case s.cfg.FreezeOnUnhealthyReplica:
		var streaming int
		if err := s.store.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'`).Scan(&streaming); err != nil {
			return nil, fmt.Errorf("replication state: %w", err)
		}
		if streaming == 0 {
			st.WritesAllowed, st.WritesRefusedReason = false,
				fmt.Sprintf("no standby streams from region %s, so a failover would lose what is written now (WRITE_FREEZE_ON_UNHEALTHY_REPLICA)", st.RegionId)
		}
	}
	return st, nil
}

// region is the gate with the region's recent transitions: its failover status.
func (s *Server) region(ctx context.Context) (*failoverv1.GetFailoverStatusResponse, error) {
	st, err := s.gate(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := s.store.pool.Query(ctx, `SELECT from_state, to_state, event, actor, reason, at FROM failover.transitions
		WHERE region_id = $1 ORDER BY transition_id DESC LIMIT 10`, s.cfg.RegionID)
	if err != nil {
		return nil, fmt.Errorf("transitions: %w", err)
	}
	st.RecentTransitions, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (*failoverv1.Transition, error) {
		var t failoverv1.Transition
		var at time.Time
		err := r.Scan(&t.FromState, &t.ToState, &t.Event, &t.Actor, &t.Reason, &at)
		t.At = timestamppb.New(at)
		return &t, err
	})
	if err != nil || s.rdb == nil {
		return st, err
	}
	// The transitions of a failover in flight (kept in Redis until the database takes
	// writes), newest first, before the recorded ones.
	logs, err := s.rdb.LRange(ctx, s.key("transitions", s.cfg.RegionID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("transitions in flight: %w", err)
	}
	var inFlight []*failoverv1.Transition
	for _, l := range logs {
		var t map[string]string
		if json.Unmarshal([]byte(l), &t) != nil {
			continue
		}
		at, _ := time.Parse(time.RFC3339Nano, t["at"])
		inFlight = append([]*failoverv1.Transition{{FromState: t["from"], ToState: t["to"], Event: t["event"], Actor: t["actor"], Reason: t["reason"],
			At: timestamppb.New(at)}}, inFlight...)
	}
	st.RecentTransitions = append(inFlight, st.RecentTransitions...)
	return st, nil
}

// GetFailoverStatus answers this region's failover status.
func (s *Server) GetFailoverStatus(ctx context.Context, _ *failoverv1.GetFailoverStatusRequest) (*failoverv1.GetFailoverStatusResponse, error) {
	return s.region(ctx)
}

// GetWriteGate answers whether this region takes writes.
func (s *Server) GetWriteGate(ctx context.Context, _ *failoverv1.GetWriteGateRequest) (*failoverv1.GetWriteGateResponse, error) {
	st, err := s.gate(ctx)
	if err != nil {
		return nil, err
	}
	return &failoverv1.GetWriteGateResponse{WritesAllowed: st.GetWritesAllowed(), Reason: st.GetWritesRefusedReason()}, nil
}

// UpdateWriteFreeze turns the operator's freeze on or off; platform admins only.
func (s *Server) UpdateWriteFreeze(ctx context.Context, req *failoverv1.UpdateWriteFreezeRequest) (*failoverv1.UpdateWriteFreezeResponse, error) {
	if n := utf8.RuneCountInString(req.GetReason()); req.GetFreeze() && (n == 0 || n > 500) {
		return nil, apierr.InvalidArgument("reason", "reason must be 1 to 500 characters when freezing (it is shown to refused writers)")
	}
	p, err := s.platformAdmin(ctx, "freezing writes")
	if err != nil {
		return nil, err
	}
	var inRecovery bool
	if err := s.store.pool.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil {
		return nil, err
	}
	if inRecovery {
		return nil, apierr.New(codes.FailedPrecondition, CodeRegionReadOnly,
			fmt.Sprintf("region %s's database is a standby: its writes are refused anyway, and its freeze cannot be recorded here", s.cfg.RegionID))
	}
	reason := strings.TrimSpace(req.GetReason())
	if !req.GetFreeze() {
		reason = ""
	}
	if _, err := s.store.pool.Exec(ctx, `INSERT INTO failover.regions (region_id, role, writes_frozen, freeze_reason, updated_by) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (region_id) DO UPDATE SET writes_frozen = $3, freeze_reason = $4, updated_by = $5, updated_at = now()`,
		s.cfg.RegionID, s.cfg.RegionRole, req.GetFreeze(), reason, p.KeyID); err != nil {
		return nil, fmt.Errorf("record the freeze: %w", err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeWriteFreezeChanged, Outcome: audit.OutcomeSuccess, ResourceType: "region", ResourceID: s.cfg.RegionID,
		Metadata: map[string]any{"freeze": req.GetFreeze(), "reason": reason}})
	st, err := s.region(ctx)
	if err != nil {
		return nil, err
	}
	return &failoverv1.UpdateWriteFreezeResponse{Status: st}, nil
}
