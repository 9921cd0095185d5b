package failover

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	failoverv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/failover/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/redislock"
)

// Codes of failovers.
const (
	CodeFailoverDisabled = "FAILOVER_DISABLED"
	CodeTokenInvalid     = "FAILOVER_TOKEN_INVALID"
	CodeWrongRegion      = "FAILOVER_WRONG_REGION"
	CodeInProgress       = "FAILOVER_IN_PROGRESS"
	CodeCooldown         = "FAILOVER_COOLDOWN"
	CodeFailoverFailed   = "FAILOVER_FAILED"
	CodeRollbackRefused  = "FAILOVER_ROLLBACK_REFUSED"
)

// WithRedis gives the control plane its Redis (tokens, the lock, the cooldown, and the
// state while this region's database is still a read-only standby) and its peers.
func (s *Server) WithRedis(rdb redis.UniversalClient, prefix string, peers map[string]failoverv1.FailoverServiceClient) *Server {
	s.rdb, s.prefix, s.peers = rdb, prefix+"failover:", peers
	return s
}

func (s *Server) key(parts ...string) string { return s.prefix + strings.Join(parts, ":") }

// platformAdmin refuses a caller whose tenant is not among PLATFORM_ADMIN_TENANTS.
func (s *Server) platformAdmin(ctx context.Context, what string) (principal.Principal, error) {
	return principal.RequirePlatformAdmin(ctx, s.cfg.PlatformAdminTenants, what)
}

func checkReason(reason string) error {
	if n := utf8.RuneCountInString(reason); n == 0 || n > 500 {
		return apierr.InvalidArgument("reason", "reason must be 1 to 500 characters")
	}
	return nil
}

// GetFailoverReadiness reads replication from PostgreSQL: on a standby its WAL receiver and
// replay lag, on a primary the standbys streaming from it.
func (s *Server) GetFailoverReadiness(ctx context.Context, _ *failoverv1.GetFailoverReadinessRequest) (*failoverv1.GetFailoverReadinessResponse, error) {
	st, err := s.gate(ctx)
	if err != nil {
		return nil, err
	}
	out := &failoverv1.GetFailoverReadinessResponse{RegionId: s.cfg.RegionID, Role: st.GetRole(), DatabaseInRecovery: st.GetDatabaseInRecovery(),
		LagMaxSeconds: s.cfg.LagMaxSeconds, FailoverEnabled: s.cfg.FailoverEnabled, Mode: s.cfg.FailoverMode, Reasons: []string{}}
	db := s.store.pool
	if out.DatabaseInRecovery {
		var status *string
		if err := db.QueryRow(ctx, `SELECT (SELECT status FROM pg_stat_wal_receiver LIMIT 1),
				CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0
				ELSE coalesce(extract(epoch FROM now() - pg_last_xact_replay_timestamp()), 0) END`).Scan(&status, &out.LagSeconds); err != nil {
			return nil, fmt.Errorf("replication state: %w", err)
		}
		out.Streaming = status != nil && *status == "streaming"
	} else {
		rows, err := db.Query(ctx, `SELECT coalesce(client_addr::text, 'local'), state, coalesce(extract(epoch FROM replay_lag), 0),
			coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint FROM pg_stat_replication`)
		if err != nil {
			return nil, fmt.Errorf("replication state: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var sb failoverv1.Standby
			if err := rows.Scan(&sb.ClientAddr, &sb.State, &sb.ReplayLagSeconds, &sb.LagBytes); err != nil {
				return nil, err
			}
			out.Standbys = append(out.Standbys, &sb)
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	switch {
	case !out.DatabaseInRecovery:
		out.Reasons = append(out.Reasons, "this region's database is a primary: there is nothing to promote here")
	default:
		if !s.cfg.FailoverEnabled {
			out.Reasons = append(out.Reasons, "FAILOVER_ENABLED is false")
		}
		if !out.Streaming {
			out.Reasons = append(out.Reasons, "the standby is not streaming from its primary")
		}
		if out.LagSeconds > float64(s.cfg.LagMaxSeconds) {
			out.Reasons = append(out.Reasons, fmt.Sprintf("replay lags %.1f s behind, over REPLICATION_LAG_MAX_SECONDS (%d)", out.LagSeconds, s.cfg.LagMaxSeconds))
		}
	}
	out.ReadyToPromote = len(out.Reasons) == 0
	return out, nil
}

// RequestFailoverToken issues a one-time token; only its hash is kept, for its TTL.
func (s *Server) RequestFailoverToken(ctx context.Context, req *failoverv1.RequestFailoverTokenRequest) (*failoverv1.RequestFailoverTokenResponse, error) {
	if req.GetPurpose() != "promote" && req.GetPurpose() != "rollback" {
		return nil, apierr.InvalidArgument("purpose", "purpose must be promote or rollback")
	}
	if err := checkReason(req.GetReason()); err != nil {
		return nil, err
	}
	if _, err := s.platformAdmin(ctx, "failing over"); err != nil {
		return nil, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	token := "nft_" + base64.RawURLEncoding.EncodeToString(b)
	ttl := time.Duration(s.cfg.TokenTTLSeconds) * time.Second
	if err := s.rdb.Set(ctx, s.tokenKey(token), req.GetPurpose(), ttl).Err(); err != nil {
		return nil, fmt.Errorf("store the token: %w", err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeFailoverTokenIssued, Outcome: audit.OutcomeSuccess, ResourceType: "region", ResourceID: s.cfg.RegionID,
		Metadata: map[string]any{"purpose": req.GetPurpose(), "reason": req.GetReason(), "ttl_s": s.cfg.TokenTTLSeconds}})
	return &failoverv1.RequestFailoverTokenResponse{Token: token, Purpose: req.GetPurpose(), ExpiresAt: timestamppb.New(time.Now().Add(ttl))}, nil
}

func (s *Server) tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.key("token", hex.EncodeToString(sum[:]))
}

// consumeToken takes a token for purpose: whatever the outcome it cannot be used again.
func (s *Server) consumeToken(ctx context.Context, token, purpose string) error {
	got, err := s.rdb.GetDel(ctx, s.tokenKey(token)).Result()
	if errors.Is(err, redis.Nil) || (err == nil && got != purpose) {
		return apierr.New(codes.PermissionDenied, CodeTokenInvalid,
			fmt.Sprintf("the token is unknown, already used, expired or not for %s: request a new one (POST /v1/ops/failover/request-token)", purpose))
	}
	return err
}

// lock takes the one-failover-at-a-time lock of this region; release gives it back.
func (s *Server) lock(ctx context.Context) (release func(), err error) {
	free, ok, err := redislock.Acquire(ctx, s.rdb, s.key("lock"), 5*time.Minute)
	if err != nil {
		return nil, fmt.Errorf("failover lock: %w", err)
	}
	if !ok {
		return nil, apierr.New(codes.FailedPrecondition, CodeInProgress, fmt.Sprintf("another failover of region %s is running", s.cfg.RegionID))
	}
	return func() { _ = free() }, nil
}

// move applies an event to the in-flight state, keeping it (and its log) in Redis until
// this region's database is writable, and audits it.
func (s *Server) move(ctx context.Context, from State, e Event, actor, reason string) (State, error) {
	to, err := Next(from, e)
	if err != nil {
		return from, apierr.New(codes.FailedPrecondition, CodeInProgress, err.Error(), "state", string(from))
	}
	t, _ := json.Marshal(map[string]string{"from": string(from), "to": string(to), "event": string(e), "actor": actor, "reason": reason,
		"at": time.Now().UTC().Format(time.RFC3339Nano)})
	pipe := s.rdb.TxPipeline()
	pipe.Set(ctx, s.key("state", s.cfg.RegionID), string(to), 0)
	pipe.RPush(ctx, s.key("transitions", s.cfg.RegionID), t)
	if _, err := pipe.Exec(ctx); err != nil {
		return from, fmt.Errorf("record the transition: %w", err)
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeFailoverTransition, Outcome: audit.OutcomeSuccess, ResourceType: "region", ResourceID: s.cfg.RegionID,
		Metadata: map[string]any{"from": string(from), "to": string(to), "event": string(e)}})
	return to, nil
}

// settle writes the in-flight transitions and the region's row to its (writable) database.
func (s *Server) settle(ctx context.Context, role string, state State) error {
	logs, err := s.rdb.LRange(ctx, s.key("transitions", s.cfg.RegionID), 0, -1).Result()
	if err != nil {
		return err
	}
	tx, err := s.store.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit: a no-op
	for _, l := range logs {
		var t map[string]string
		if err := json.Unmarshal([]byte(l), &t); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO failover.transitions (region_id, from_state, to_state, event, actor, reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			s.cfg.RegionID, t["from"], t["to"], t["event"], t["actor"], t["reason"], t["at"]); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `INSERT INTO failover.regions (region_id, role, state, updated_by) VALUES ($1, $2, $3, 'failover')
		ON CONFLICT (region_id) DO UPDATE SET role = $2, state = $3, writes_frozen = false, freeze_reason = '', updated_by = 'failover', updated_at = now()`,
		s.cfg.RegionID, role, string(state)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	return s.rdb.Del(ctx, s.key("transitions", s.cfg.RegionID), s.key("state", s.cfg.RegionID)).Err()
}

// PromoteRegion promotes this region.
func (s *Server) PromoteRegion(ctx context.Context, req *failoverv1.PromoteRegionRequest) (*failoverv1.PromoteRegionResponse, error) {
	if err := checkReason(req.GetReason()); err != nil {
		return nil, err
	}
	p, err := s.platformAdmin(ctx, "failing over")
	if err != nil {
		return nil, err
	}
	switch {
	case !s.cfg.FailoverEnabled:
		return nil, apierr.New(codes.FailedPrecondition, CodeFailoverDisabled, fmt.Sprintf("FAILOVER_ENABLED is false in region %s", s.cfg.RegionID))
	case req.GetTargetRegion() != s.cfg.RegionID:
		return nil, apierr.New(codes.FailedPrecondition, CodeWrongRegion,
			fmt.Sprintf("this is region %s: send the promotion of region %q to that region's gateway", s.cfg.RegionID, req.GetTargetRegion()), "field", "target_region")
	}
	if err := s.consumeToken(ctx, req.GetToken(), "promote"); err != nil {
		return nil, err
	}
	if ttl, err := s.rdb.TTL(ctx, s.key("cooldown")).Result(); err == nil && ttl > 0 {
		return nil, apierr.New(codes.FailedPrecondition, CodeCooldown, fmt.Sprintf("a failover ended less than FAILOVER_COOLDOWN_SECONDS ago; wait %s", ttl.Round(time.Second)),
			"retry_after_s", fmt.Sprint(int(ttl.Seconds())+1))
	}
	release, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	st, err := s.gate(ctx)
	if err != nil {
		return nil, err
	}
	actor, reason := p.KeyID, req.GetReason()
	state, err := s.move(ctx, State(st.GetState()), EventPromoteRequested, actor, reason)
	if err != nil {
		return nil, err
	}
	fail := func(e Event, msg string) (*failoverv1.PromoteRegionResponse, error) {
		if _, err := s.move(ctx, state, e, actor, msg); err != nil {
			return nil, err
		}
		return nil, apierr.New(codes.FailedPrecondition, CodeFailoverFailed, "the failover failed: "+msg+"; the peers stay frozen: roll back (POST /v1/ops/failover/rollback) or fix and promote again with force",
			"state", string(StateFailed))
	}
	// Freeze the peers first: nothing may write while the primary moves.
	for id, peer := range s.peers {
		if _, err := peer.FreezeForFailover(ctx, &failoverv1.FreezeForFailoverRequest{Freeze: true, ByRegion: s.cfg.RegionID, Reason: reason}); err != nil && !req.GetForce() {
			return fail(EventFreezeFailed, fmt.Sprintf("region %s could not be frozen (%v); promote with force only if it is down", id, err))
		}
	}
	if state, err = s.move(ctx, state, EventWritesFrozen, actor, ""); err != nil {
		return nil, err
	}
	ready, err := s.GetFailoverReadiness(ctx, nil)
	if err != nil {
		return fail(EventPrecheckFailed, err.Error())
	}
	switch {
	case !ready.GetDatabaseInRecovery():
		return fail(EventPrecheckFailed, "this region's database is not a standby")
	case s.cfg.HealthRequired && !ready.GetStreaming() && !req.GetForce():
		return fail(EventPrecheckFailed, "the standby is not streaming from its primary (REPLICATION_HEALTH_REQUIRED)")
	case ready.GetLagSeconds() > float64(s.cfg.LagMaxSeconds) && !req.GetForce():
		return fail(EventPrecheckFailed, fmt.Sprintf("replay lags %.1f s, over REPLICATION_LAG_MAX_SECONDS", ready.GetLagSeconds()))
	}
	if state, err = s.move(ctx, state, EventPrecheckPassed, actor, ""); err != nil {
		return nil, err
	}
	var promoted bool
	if err := s.store.pool.QueryRow(ctx, `SELECT pg_promote(true, 60)`).Scan(&promoted); err != nil || !promoted {
		return fail(EventPromoteFailed, fmt.Sprintf("pg_promote did not complete: %v", err))
	}
	if state, err = s.move(ctx, state, EventPromoted, actor, ""); err != nil {
		return nil, err
	}
	if err := s.settle(ctx, "primary", StateCompleted); err != nil {
		return fail(EventVerifyFailed, "the promoted database does not take writes: "+err.Error())
	}
	if _, err := s.move(ctx, state, EventVerified, actor, ""); err != nil {
		return nil, err
	}
	// The Redis log now only holds the last move: write it too.
	if err := s.settle(ctx, "primary", StateCompleted); err != nil {
		return nil, err
	}
	_ = s.rdb.Set(ctx, s.key("cooldown"), "1", time.Duration(s.cfg.CooldownSeconds)*time.Second).Err()
	out, err := s.region(ctx)
	if err != nil {
		return nil, err
	}
	return &failoverv1.PromoteRegionResponse{Status: out}, nil
}

// RollbackFailover undoes a failed failover that left this region's database a standby.
func (s *Server) RollbackFailover(ctx context.Context, req *failoverv1.RollbackFailoverRequest) (*failoverv1.RollbackFailoverResponse, error) {
	if err := checkReason(req.GetReason()); err != nil {
		return nil, err
	}
	p, err := s.platformAdmin(ctx, "failing over")
	if err != nil {
		return nil, err
	}
	if err := s.consumeToken(ctx, req.GetToken(), "rollback"); err != nil {
		return nil, err
	}
	release, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	st, err := s.gate(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case State(st.GetState()) != StateFailed && State(st.GetState()) != StateRollbackPending:
		return nil, apierr.New(codes.FailedPrecondition, CodeRollbackRefused, fmt.Sprintf("only a failed failover rolls back; region %s is %s", s.cfg.RegionID, st.GetState()))
	case s.promotedInFlight(ctx):
		return nil, apierr.New(codes.FailedPrecondition, CodeRollbackRefused,
			fmt.Sprintf("region %s's database was promoted: rolling back would leave two primaries (docs/runbooks/split-brain-mitigation.md)", s.cfg.RegionID))
	}
	state := State(st.GetState())
	if state == StateFailed {
		if state, err = s.move(ctx, state, EventRollbackRequested, p.KeyID, req.GetReason()); err != nil {
			return nil, err
		}
	}
	for id, peer := range s.peers {
		if _, err := peer.FreezeForFailover(ctx, &failoverv1.FreezeForFailoverRequest{Freeze: false, ByRegion: s.cfg.RegionID, Reason: req.GetReason()}); err != nil {
			_, _ = s.move(ctx, state, EventRollbackFailed, p.KeyID, err.Error())
			return nil, apierr.New(codes.Unavailable, CodeRollbackRefused, fmt.Sprintf("region %s could not be unfrozen (%v): the rollback is pending; try again", id, err))
		}
	}
	if _, err := s.move(ctx, state, EventRollbackSucceeded, p.KeyID, req.GetReason()); err != nil {
		return nil, err
	}
	out, err := s.region(ctx)
	if err != nil {
		return nil, err
	}
	return &failoverv1.RollbackFailoverResponse{Status: out}, nil
}

// promotedInFlight reports whether the failover in flight got as far as promoting this
// region's database (its log says promoted).
func (s *Server) promotedInFlight(ctx context.Context) bool {
	logs, err := s.rdb.LRange(ctx, s.key("transitions", s.cfg.RegionID), 0, -1).Result()
	if err != nil {
		return true // unknown: refuse, as if promoted
	}
	return slices.ContainsFunc(logs, func(l string) bool { return strings.Contains(l, `"event":"`+string(EventPromoted)+`"`) })
}

// FreezeForFailover freezes this region because another is being promoted (it becomes a
// secondary), or unfreezes it when that failover rolls back. The region's row is locked
// while it changes, and a region frozen for one failover refuses another's: two regions
// cannot both take over from it.
func (s *Server) FreezeForFailover(ctx context.Context, req *failoverv1.FreezeForFailoverRequest) (*failoverv1.FreezeForFailoverResponse, error) {
	if req.GetByRegion() == "" || req.GetByRegion() == s.cfg.RegionID {
		return nil, apierr.InvalidArgument("by_region", "by_region must name another region")
	}
	role, reason, by := "primary", "", "failover:"+req.GetByRegion()
	if req.GetFreeze() {
		role, reason = "secondary", fmt.Sprintf("region %s is being promoted: %s", req.GetByRegion(), req.GetReason())
	}
	tx, err := s.store.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit: a no-op
	if _, err := tx.Exec(ctx, `INSERT INTO failover.regions (region_id, role) VALUES ($1, $2) ON CONFLICT DO NOTHING`, s.cfg.RegionID, s.cfg.RegionRole); err != nil {
		return nil, fmt.Errorf("freeze region %s: %w", s.cfg.RegionID, err)
	}
	var frozen bool
	var holder string
	if err := tx.QueryRow(ctx, `SELECT writes_frozen, updated_by FROM failover.regions WHERE region_id = $1 FOR UPDATE`, s.cfg.RegionID).Scan(&frozen, &holder); err != nil {
		return nil, fmt.Errorf("freeze region %s: %w", s.cfg.RegionID, err)
	}
	if frozen && strings.HasPrefix(holder, "failover:") && holder != by {
		return nil, apierr.New(codes.FailedPrecondition, CodeInProgress,
			fmt.Sprintf("region %s is frozen for a failover to region %s", s.cfg.RegionID, strings.TrimPrefix(holder, "failover:")))
	}
	if _, err := tx.Exec(ctx, `UPDATE failover.regions SET role = $2, writes_frozen = $3, freeze_reason = $4, updated_by = $5, updated_at = now() WHERE region_id = $1`,
		s.cfg.RegionID, role, req.GetFreeze(), reason, by); err != nil {
		return nil, fmt.Errorf("freeze region %s: %w", s.cfg.RegionID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeWriteFreezeChanged, Outcome: audit.OutcomeSuccess, ActorType: audit.ActorSystem, ResourceType: "region",
		ResourceID: s.cfg.RegionID, Metadata: map[string]any{"freeze": req.GetFreeze(), "by_region": req.GetByRegion()}})
	return &failoverv1.FreezeForFailoverResponse{}, nil
}
