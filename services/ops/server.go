// Package ops is the operators' view of the platform (nexusrag.ops.v1.OpsService): health
// that answers while degraded and says what, request metrics, and the SLO with its error
// budget, all computed from what every gateway replica counted (pkg/reqstats).
package ops

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	opsv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ops/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/reqstats"
	"github.com/nexusrag/nexusrag/services/gateway"
)

// Config holds the objectives (SLO_*), documented in README "SLO".
type Config struct {
	// Window is the SLO window: availability, p95 and the error budget are over it.
	Window time.Duration `env:"SLO_WINDOW" envDefault:"1h"`
	// AvailabilityTarget is the percentage of requests that must not answer 5xx.
	AvailabilityTarget float64 `env:"SLO_AVAILABILITY_TARGET" envDefault:"99.9"`
	// P95 objectives per group, in ms.
	P95RunMS           float64 `env:"SLO_P95_RUN_MS" envDefault:"2500"`
	P95APIMS           float64 `env:"SLO_P95_API_MS" envDefault:"800"`
	P95DocumentsTextMS float64 `env:"SLO_P95_DOCUMENTS_TEXT_MS" envDefault:"1000"`
	// BurnRateAtRisk is the 5-minute burn rate from which the status is at_risk.
	BurnRateAtRisk float64 `env:"SLO_BURN_RATE_AT_RISK" envDefault:"2"`
	// PlatformAdminTenants are the tenants whose admins change the rollout controls
	// (comma-separated; empty: nobody, through REST).
	PlatformAdminTenants string `env:"PLATFORM_ADMIN_TENANTS"`
}

func (c Config) platformAdmins() []string {
	var out []string
	for _, t := range strings.Split(c.PlatformAdminTenants, ",") {
		if t = strings.TrimSpace(t); t != "" {
			out = append(out, t)
		}
	}
	return out
}

// Validate checks rules beyond types.
func (c *Config) Validate() error {
	switch {
	case c.Window < 5*time.Minute || c.Window > 24*time.Hour:
		return fmt.Errorf("SLO_WINDOW: %s is outside 5m..24h", c.Window)
	case !(c.AvailabilityTarget > 0) || c.AvailabilityTarget >= 100:
		return fmt.Errorf("SLO_AVAILABILITY_TARGET: %v is not above 0 and below 100", c.AvailabilityTarget)
	case !(c.P95RunMS > 0) || !(c.P95APIMS > 0) || !(c.P95DocumentsTextMS > 0):
		return fmt.Errorf("SLO_P95_RUN_MS, SLO_P95_API_MS, SLO_P95_DOCUMENTS_TEXT_MS: must be above 0")
	case !(c.BurnRateAtRisk > 0):
		return fmt.Errorf("SLO_BURN_RATE_AT_RISK: must be above 0")
	}
	return nil
}

// objectives are the p95 objectives per group.
func (c Config) objectives() map[string]float64 {
	return map[string]float64{"run": c.P95RunMS, "api": c.P95APIMS, "documents_text": c.P95DocumentsTextMS}
}

// Recorder is where the service sends audit events.
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// BreakerState reads one integration's breaker.
type BreakerState func(ctx context.Context) (string, error)

// Server implements nexusrag.ops.v1.OpsService.
type Server struct {
	opsv1.UnimplementedOpsServiceServer
	cfg      Config
	store    *Store
	health   *gateway.Health
	stats    *reqstats.Stats
	ingest   ingestv1.IngestServiceClient
	breakers map[string]BreakerState
	// maintenance runs a task in the service that owns it, by owner name.
	maintenance map[string]MaintenanceFunc
	audit       Recorder
	log         *slog.Logger
}

// NewServer returns the OpsService: health probes every service and dependency, stats
// holds every replica's request counts, ingest answers the worker's status.
func NewServer(cfg Config, store *Store, health *gateway.Health, stats *reqstats.Stats, ingest ingestv1.IngestServiceClient,
	breakers map[string]BreakerState, rec Recorder, log *slog.Logger) *Server {
	return &Server{cfg: cfg, store: store, health: health, stats: stats, ingest: ingest, breakers: breakers, audit: rec, log: log}
}

func (s *Server) viewed(ctx context.Context, what string) {
	s.audit.Record(ctx, audit.Event{Type: audit.TypeOpsViewed, Outcome: audit.OutcomeSuccess, ResourceType: "ops", ResourceID: what})
}

const (
	ok       = "ok"
	degraded = "degraded"
)

// GetOpsHealth answers every time, with what is degraded.
func (s *Server) GetOpsHealth(ctx context.Context, _ *opsv1.GetOpsHealthRequest) (*opsv1.GetOpsHealthResponse, error) {
	rep := s.health.Check(ctx)
	out := &opsv1.GetOpsHealthResponse{Status: ok, Dependencies: map[string]*opsv1.Component{}, Services: map[string]*opsv1.Component{},
		Worker: &opsv1.Component{Status: ok}, CheckedAt: timestamppb.Now()}
	component := func(c gateway.ComponentHealth) *opsv1.Component {
		st := ok
		if c.Status != "ok" {
			st, out.Status = degraded, degraded
		}
		return &opsv1.Component{Status: st, LatencyMs: c.LatencyMS, Error: c.Error}
	}
	for name, c := range rep.Dependencies {
		out.Dependencies[name] = component(c)
	}
	for name, c := range rep.Services {
		out.Services[name] = component(c)
	}
	ws, err := s.ingest.GetWorkerStatus(ctx, &ingestv1.GetWorkerStatusRequest{})
	switch {
	case err != nil:
		out.Worker = &opsv1.Component{Status: degraded, Error: "the ingest service cannot tell: " + messageOf(err)}
	case ws.GetRedisError() != "":
		out.Worker = &opsv1.Component{Status: degraded, Error: "Redis cannot tell: " + ws.GetRedisError()}
		if r := out.Dependencies["redis"]; r != nil {
			r.Status = degraded
		}
	case ws.HeartbeatAgeS == nil:
		out.Worker = &opsv1.Component{Status: degraded, Error: "no ingest worker has reported"}
	case ws.GetHeartbeatAgeS() > ws.GetStaleAfterS():
		out.Worker = &opsv1.Component{Status: degraded, Error: fmt.Sprintf("the last heartbeat is older than %gs", ws.GetStaleAfterS())}
	}
	if ws != nil {
		out.WorkerHeartbeatAgeS, out.QueueDepth = ws.HeartbeatAgeS, ws.QueueDepth
	}
	if out.Worker.GetStatus() != ok {
		out.Status = degraded
	}
	s.viewed(ctx, "health")
	return out, nil
}

// Bulkheads are the bulkheads processes report (PublishBulkheads).
var Bulkheads = []string{"run", "ingest"}

// PublishBulkheads reports bs (name -> bulkhead) into stats every interval until ctx
// ends: in use and capacity as this process's gauges, refusals as counts per minute.
func PublishBulkheads(ctx context.Context, stats *reqstats.Stats, bs map[string]*bulkhead.Bulkhead, interval time.Duration) {
	last := map[string]int64{}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		for name, b := range bs {
			stats.SetGauge("bulkhead:"+name+":in_use", int64(b.InUse()))
			stats.SetGauge("bulkhead:"+name+":capacity", int64(b.Capacity()))
			if r := b.Rejected(); r > last[name] {
				stats.Count("bulkhead:"+name+":rejected", r-last[name])
				last[name] = r
			}
		}
		_ = stats.Flush(ctx) // what Redis refuses is kept for the next flush
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

var routeClasses = []string{gateway.ClassRun, gateway.ClassMutation, gateway.ClassRead, gateway.ClassOps}

// GetOpsMetrics sums the request counts of the last window_minutes.
func (s *Server) GetOpsMetrics(ctx context.Context, req *opsv1.GetOpsMetricsRequest) (*opsv1.GetOpsMetricsResponse, error) {
	minutes := req.GetWindowMinutes()
	if minutes == 0 {
		minutes = 5
	}
	if minutes < 1 || minutes > 1440 {
		return nil, apierr.InvalidArgument("window_minutes", "window_minutes must be 1 to 1440")
	}
	w, err := s.stats.Window(ctx, time.Duration(minutes)*time.Minute)
	if err != nil {
		return nil, unavailable(err)
	}
	gauges, err := s.stats.Gauges(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	open := gauges["runs_open"]
	out := &opsv1.GetOpsMetricsResponse{WindowMinutes: minutes, RouteClasses: map[string]*opsv1.RequestStats{}, Breakers: map[string]*opsv1.BreakerState{},
		Runs: &opsv1.StreamStats{Open: max(0, open), Started: w["runs:started"].Requests, Completed: w["runs:completed"].Requests, Errored: w["runs:errored"].Requests}}
	for _, class := range routeClasses {
		c := w["class:"+class]
		out.RouteClasses[class] = &opsv1.RequestStats{Count: c.Requests, Errors: c.Errors, P50Ms: c.Quantile(.5), P95Ms: c.Quantile(.95), P99Ms: c.Quantile(.99)}
	}
	out.Bulkheads = map[string]*opsv1.BulkheadState{}
	for _, name := range Bulkheads {
		out.Bulkheads[name] = &opsv1.BulkheadState{InUse: gauges["bulkhead:"+name+":in_use"], Capacity: gauges["bulkhead:"+name+":capacity"],
			Rejected: w["bulkhead:"+name+":rejected"].Requests}
	}
	for name, state := range s.breakers {
		st, err := state(ctx)
		if err != nil {
			st = "unknown"
		}
		out.Breakers[name] = &opsv1.BreakerState{State: st}
	}
	s.viewed(ctx, "metrics")
	return out, nil
}

// GetSlo computes the SLO over the window (README "SLO" documents the rules).
func (s *Server) GetSlo(ctx context.Context, _ *opsv1.GetSloRequest) (*opsv1.GetSloResponse, error) {
	w, err := s.stats.Window(ctx, s.cfg.Window)
	if err != nil {
		return nil, unavailable(err)
	}
	recent, err := s.stats.Window(ctx, 5*time.Minute)
	if err != nil {
		return nil, unavailable(err)
	}
	objectives := s.cfg.objectives()
	var all reqstats.Counts
	out := &opsv1.GetSloResponse{Window: formatWindow(s.cfg.Window), P95: map[string]float64{},
		Objectives: map[string]float64{"availability": s.cfg.AvailabilityTarget}}
	var slow []string
	for group, objective := range objectives {
		c := w["slo:"+group]
		all.Requests += c.Requests
		all.Errors += c.Errors
		p95 := c.Quantile(.95)
		out.P95[group] = p95
		out.Objectives["p95_"+group] = objective
		if c.Requests > 0 && p95 > objective {
			slow = append(slow, fmt.Sprintf("p95 of %s is %gms, above its %gms objective", group, p95, objective))
		}
	}
	slices.Sort(slow)
	var recentAll reqstats.Counts
	for group := range objectives {
		recentAll.Requests += recent["slo:"+group].Requests
		recentAll.Errors += recent["slo:"+group].Errors
	}
	budget := 1 - s.cfg.AvailabilityTarget/100 // the error rate the objective allows
	out.Requests = all.Requests
	out.Availability = 100
	remaining := 100.0
	if all.Requests > 0 {
		rate := float64(all.Errors) / float64(all.Requests)
		out.Availability = round(100*(1-rate), 3)
		remaining = max(0, 100*(1-rate/budget))
	}
	burn := 0.0
	if recentAll.Requests > 0 {
		burn = float64(recentAll.Errors) / float64(recentAll.Requests) / budget
	}
	out.ErrorBudget = &opsv1.ErrorBudget{RemainingPct: round(remaining, 1), BurnRate_5M: round(burn, 2)}
	out.Status = "healthy"
	switch {
	case all.Requests > 0 && out.Availability < s.cfg.AvailabilityTarget:
		out.Status = "breached"
		out.Reasons = append(out.Reasons, fmt.Sprintf("availability %g%% is below the %g%% objective: the error budget is spent", out.Availability, s.cfg.AvailabilityTarget))
	case burn >= s.cfg.BurnRateAtRisk:
		out.Status = "at_risk"
		out.Reasons = append(out.Reasons, fmt.Sprintf("the last 5 minutes burn the error budget %gx as fast as it allows (at risk from %gx)", round(burn, 2), s.cfg.BurnRateAtRisk))
	}
	if len(slow) > 0 {
		if out.Status == "healthy" {
			out.Status = "at_risk"
		}
		out.Reasons = append(out.Reasons, slow...)
	}
	s.viewed(ctx, "slo")
	return out, nil
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// formatWindow writes 1h rather than 1h0m0s.
func formatWindow(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	return strings.TrimSuffix(s, "0m")
}

func unavailable(err error) error {
	return apierr.New(codes.Unavailable, grpcx.CodeDependencyUnavailable, "request statistics are unavailable: "+err.Error())
}

func messageOf(err error) string {
	if e, ok := apierr.From(err); ok {
		return e.Message
	}
	return err.Error()
}
