package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	failoverv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/failover/v1"
	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	opsv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ops/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	uiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ui/v1"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/reqstats"
	"github.com/nexusrag/nexusrag/services/billing"
	"github.com/nexusrag/nexusrag/services/failover"
	"github.com/nexusrag/nexusrag/services/gateway"
	"github.com/nexusrag/nexusrag/services/gateway/console"
	"github.com/nexusrag/nexusrag/services/governance"
	"github.com/nexusrag/nexusrag/services/ingest"
	"github.com/nexusrag/nexusrag/services/ops"
	"github.com/nexusrag/nexusrag/services/retrieval"
	"github.com/nexusrag/nexusrag/services/run"
	"github.com/nexusrag/nexusrag/services/ui"
)

// modules is the one table of what the binary can run: every module, what it depends
// on, and for services what they serve. Start order, `serve --services`, the
// <NAME>_GRPC_ADDR lookup, the gateway's backends and health probes, the migrations and
// `nexusrag modules` are derived from it. A new service is its folder plus one entry.
func modules() registry {
	infra := func(more ...string) []string {
		return append([]string{modPostgres, modRedis, modAudit, modGRPCServer}, more...)
	}
	return registry{
		{name: modMetrics, init: initMetrics},
		{name: modPostgres, init: initPostgres},
		{name: modRedis, init: initRedis},
		{name: modServiceKeys, init: initServiceKeys},
		{name: modAPIKeys, deps: []string{modPostgres, modServiceKeys}, init: initAPIKeys},
		{name: modGRPCServer, deps: []string{modServiceKeys, modAPIKeys}, init: initGRPCServer},
		// Audit events go to governance, which audits its own changes too: a call, not a start order.
		{name: modAudit, deps: []string{modGRPCServer}, calls: []string{"governance"}, init: initAudit},
		{name: modEntitlements, deps: []string{modGRPCServer}, calls: []string{"billing"}, init: initEntitlements},
		{name: modRollouts, deps: []string{modGRPCServer}, calls: []string{"ops"}, init: initRollouts},

		{name: "governance", deps: []string{modPostgres, modRedis, modGRPCServer, modEntitlements, modAudit},
			init: initGovernance, service: &service{
				desc: &governancev1.AuditService_ServiceDesc, rest: governancev1.RegisterAuditServiceHandler, migrations: governance.Migrations,
				also: []*service{{desc: &governancev1.PolicyService_ServiceDesc, rest: governancev1.RegisterPolicyServiceHandler},
					{desc: &governancev1.LegalHoldService_ServiceDesc, rest: governancev1.RegisterLegalHoldServiceHandler},
					{desc: &governancev1.RetentionService_ServiceDesc, rest: governancev1.RegisterRetentionServiceHandler},
					{desc: &governancev1.DsarService_ServiceDesc, rest: governancev1.RegisterDsarServiceHandler},
					{desc: &governancev1.GovernanceReportService_ServiceDesc, rest: governancev1.RegisterGovernanceReportServiceHandler}}}},
		// Retention runs and DSARs select and purge rows through the services that own them.
		{name: modGovernanceWork, deps: []string{"governance"}, calls: []string{"run", "ingest"}, init: initGovernanceWork},
		{name: "retrieval", deps: infra(modEntitlements, modRollouts), init: initRetrieval, service: &service{
			desc: &retrievalv1.RetrievalService_ServiceDesc, rest: retrievalv1.RegisterRetrievalServiceHandler, migrations: retrieval.Migrations}},
		{name: "ingest", deps: infra("retrieval", modEntitlements, modRollouts), init: initIngest, service: &service{
			desc: &ingestv1.IngestService_ServiceDesc, rest: ingestv1.RegisterIngestServiceHandler, migrations: ingest.Migrations}},
		// No grpc-gateway routes: POST /v1/run is the gateway's own Server-Sent Events handler.
		{name: "run", deps: infra("retrieval", modEntitlements, modRollouts), init: initRun, service: &service{
			desc: &runv1.RunService_ServiceDesc, migrations: run.Migrations}},
		// Backups, restore drills and DR readiness; backup sets under a legal hold are asked of governance.
		{name: "failover", deps: infra(), calls: []string{"governance"}, init: initFailover, service: &service{
			desc: &failoverv1.FailoverService_ServiceDesc, rest: failoverv1.RegisterFailoverServiceHandler, migrations: failover.Migrations}},
		{name: "billing", deps: infra(modEntitlements), init: initBilling, service: &service{
			desc: &billingv1.BillingService_ServiceDesc, rest: billingv1.RegisterBillingServiceHandler, migrations: billing.Migrations}},
		// Ops reads what every service and gateway replica reports; it calls them all, in no
		// start order (the gateway fronts it like the others).
		{name: "ops", deps: infra(modEntitlements), calls: []string{"governance", "retrieval", "ingest", "run", "billing", "gateway", "ui", "failover"},
			init: initOps, service: &service{desc: &opsv1.OpsService_ServiceDesc, rest: opsv1.RegisterOpsServiceHandler, migrations: ops.Migrations}},
		// The web apps' backend: one call per screen over the services that own the data.
		{name: "ui", deps: infra(modEntitlements), calls: []string{"ingest", "retrieval", "governance", "billing"},
			init: initUI, service: &service{desc: &uiv1.UIService_ServiceDesc, rest: uiv1.RegisterUIServiceHandler, migrations: ui.Migrations}},
		{name: "gateway", deps: infra(modAPIKeys, modEntitlements), fronts: true, init: initGateway, service: &service{
			desc: &gatewayv1.AuthService_ServiceDesc, rest: gatewayv1.RegisterAuthServiceHandler, migrations: gateway.Migrations}},

		{name: modGRPCListener, deps: []string{modGRPCServer}, servesAll: true, init: initGRPCListener},
		{name: modHTTP, deps: []string{"gateway"}, init: initHTTP},
	}
}

func initGovernance(_ context.Context, a *app) error {
	cfg, err := config.Parse[governance.Config](nil)
	if err != nil {
		return err
	}
	a.grpc.Register(&governancev1.AuditService_ServiceDesc, governance.NewServer(governance.NewStore(a.pool), a.log).
		WithMaintenance(a.maintenance("governance", governance.PruneAuditTask(a.pool, cfg.AuditRetentionDays))))
	// Governance's own changes are audited like any service's: the recorder sends them to
	// governance (in this process) in its batches.
	a.grpc.Register(&governancev1.PolicyService_ServiceDesc, governance.NewPolicyServer(a.pool, a.rec, a.log))
	a.grpc.Register(&governancev1.LegalHoldService_ServiceDesc, governance.NewLegalHoldServer(a.pool, a.rec, a.log))
	// The engine works once governance-work has given it the other owners (in serve only).
	a.governance = governance.NewEngine(a.pool, governance.Owners{"governance": governance.AuditOwner(a.pool)}, a.rec, a.log)
	a.grpc.Register(&governancev1.RetentionService_ServiceDesc, governance.NewRetentionServer(a.pool, a.governance, a.rec, a.log))
	a.grpc.Register(&governancev1.DsarService_ServiceDesc, governance.NewDsarServer(a.pool, a.governance, a.rec, a.log))
	a.grpc.Register(&governancev1.GovernanceReportService_ServiceDesc, governance.NewReportServer(a.pool, a.log))
	return nil
}

// initGovernanceWork connects governance's engine to the data owners and runs it.
func initGovernanceWork(_ context.Context, a *app) error {
	for name, adapt := range map[string]func(grpc.ClientConnInterface) governance.Owner{"run": governance.RunOwner, "ingest": governance.IngestOwner} {
		conn, err := a.conn(name)
		if err != nil {
			return err
		}
		a.governance.SetOwner(name, adapt(conn))
	}
	a.goBackground("governance engine", func(ctx context.Context) error { a.governance.Run(ctx, 15*time.Second); return nil })
	return nil
}

// initFailover serves DR readiness and runs backups and drills on BACKUP_SCHEDULE_CRON.
func initFailover(_ context.Context, a *app) error {
	cfg, err := config.Parse[failover.Config](nil)
	if err != nil {
		return err
	}
	govConn, err := a.conn("governance")
	if err != nil {
		return err
	}
	srv, err := failover.NewServer(cfg, a.cfg.DatabaseURL, failover.NewStore(a.pool), governancev1.NewLegalHoldServiceClient(govConn), a.rec, a.log)
	if err != nil {
		return err
	}
	// The other regions' failover services, reached with this platform's service keys.
	peerList, err := cfg.Peers()
	if err != nil {
		return err
	}
	peers := map[string]failoverv1.FailoverServiceClient{}
	for _, pr := range peerList {
		cc, err := grpcx.Dial(pr.GRPCAddr, grpcx.ClientOptions{Tokens: a.tokens, TLS: a.clientTLS, Telemetry: a.tel})
		if err != nil {
			return fmt.Errorf("PEER_REGIONS_JSON: region %s: %w", pr.RegionID, err)
		}
		a.conns["region:"+pr.RegionID] = cc
		peers[pr.RegionID] = failoverv1.NewFailoverServiceClient(cc)
	}
	srv.WithRedis(a.rdb, a.cfg.RedisKeyPrefix, peers)
	// The backup tasks follow BACKUP_SCHEDULE_CRON, not MAINTENANCE_INTERVAL.
	srv.WithMaintenance(maintenance.NewRunner("failover", a.rdb, a.cfg.RedisKeyPrefix, a.rec, a.log, srv.Tasks()...))
	a.failover = srv
	a.grpc.Register(&failoverv1.FailoverService_ServiceDesc, srv)
	if !a.command {
		a.goBackground("backup schedule", func(ctx context.Context) error { srv.RunSchedule(ctx); return nil })
	}
	return nil
}

// initBilling serves tenants' plans, the entitlements they grant and their quotas; it
// rolls usage up and, with BILLING_WEBHOOK_ENABLED, delivers the webhook outbox.
func initBilling(_ context.Context, a *app) error {
	cfg, err := config.Parse[billing.Config](nil)
	if err != nil {
		return err
	}
	store := billing.NewStore(a.pool)
	usage := billing.NewUsage(store, a.rdb, a.cfg.RedisKeyPrefix, time.Duration(cfg.UsageRetentionDays)*24*time.Hour, nil, a.rec, a.log)
	var webhooks *billing.Dispatcher
	if cfg.Webhook.Enabled {
		br, err := a.breaker("billing-webhook")
		if err != nil {
			return err
		}
		webhooks = billing.NewDispatcher(store, cfg.Webhook, br, a.rec, a.log)
		a.goBackground("billing webhooks", func(ctx context.Context) error { webhooks.Run(ctx); return nil })
	}
	a.grpc.Register(&billingv1.BillingService_ServiceDesc, billing.NewServer(cfg, store, usage, a.rec, a.log).WithWebhooks(webhooks).
		WithMaintenance(a.maintenance("billing", usage.PruneTask())))
	a.goBackground("usage rollup", func(ctx context.Context) error { usage.Run(ctx, cfg.UsageRollupInterval); return nil })
	return nil
}

func initRetrieval(ctx context.Context, a *app) error {
	cfg, err := config.Parse[retrieval.Config](nil)
	if err != nil {
		return err
	}
	embedder, err := retrieval.NewEmbedder(ctx, cfg)
	if err != nil {
		return fmt.Errorf("EMBEDDINGS_PROVIDER=%s: %w", cfg.EmbeddingsProvider, err)
	}
	bedrockCalls, err := a.external("bedrock")
	if err != nil {
		return err
	}
	vertexCalls, err := a.external("vertex-search")
	if err != nil {
		return err
	}
	router := retrieval.NewProviders(ctx, retrieval.NewStore(a.pool), embedder, bedrockCalls, vertexCalls)
	a.onStop(func(context.Context) error { return router.Close() })
	srv := retrieval.NewServer(retrieval.NewStore(a.pool), router, a.entitlements, a.rec, a.log).WithRollouts(a.rollouts)
	a.grpc.Register(&retrievalv1.RetrievalService_ServiceDesc, srv)
	a.goBackground("retrieval statistics", func(ctx context.Context) error { srv.Run(ctx, 5*time.Second); return nil })
	a.goBackground("retrieval vector indexer", func(ctx context.Context) error { srv.IndexVectors(ctx, time.Second); return nil })
	return nil
}

// initIngest serves the documents API and runs the worker that consumes ingestion jobs.
func initIngest(_ context.Context, a *app) error {
	cfg, err := config.Parse[ingest.Config](nil)
	if err != nil {
		return err
	}
	for _, w := range config.Deprecations[ingest.Config](nil) {
		a.log.Warn(w)
	}
	conn, err := a.conn("retrieval")
	if err != nil {
		return err
	}
	store, queue, client := ingest.NewStore(a.pool), ingest.NewQueue(a.rdb, a.cfg.RedisKeyPrefix), retrievalv1.NewRetrievalServiceClient(conn)
	govConn, err := a.conn("governance")
	if err != nil {
		return err
	}
	isrv := ingest.NewServer(store, queue, client, a.rec, a.log, cfg.MaxBytes, cfg.MaxConcurrency).WithWorker(cfg.ClaimTimeout).
		WithRollouts(a.rollouts).WithLegalHolds(governancev1.NewLegalHoldServiceClient(govConn))
	a.grpc.Register(&ingestv1.IngestService_ServiceDesc, isrv)
	if b := isrv.Bulkhead(); b != nil {
		a.publishBulkhead("ingest", b)
	}
	worker := ingest.NewWorker(store, queue, client, a.log, cfg.WorkerOptions())
	a.goBackground("ingest worker", worker.Run)
	watch := ingest.HeartbeatWatch{Queue: queue, StaleAfter: cfg.ClaimTimeout, Now: time.Now, Audit: a.rec, Log: a.log}
	a.goBackground("worker heartbeat watch", func(ctx context.Context) error {
		watch.Run(ctx, max(time.Second, min(5*time.Second, cfg.ClaimTimeout/3)))
		return nil
	})
	return nil
}

// initRun serves the agent runs: the graph, sessions, generation and speech.
func initRun(ctx context.Context, a *app) error {
	cfg, err := config.Parse[run.Config](nil)
	if err != nil {
		return err
	}
	conn, err := a.conn("retrieval")
	if err != nil {
		return err
	}
	llmCalls, err := a.external("llm")
	if err != nil {
		return err
	}
	ttsCalls, err := a.external("tts")
	if err != nil {
		return err
	}
	srv, err := run.NewServer(cfg, run.NewStore(a.pool), retrievalv1.NewRetrievalServiceClient(conn),
		run.NewGenerator(ctx, cfg, llmCalls, a.log), run.NewSpeaker(cfg, ttsCalls), a.entitlements, a.rec, a.log)
	if err != nil {
		return err
	}
	a.grpc.Register(&runv1.RunService_ServiceDesc, srv.WithRollouts(a.rollouts))
	a.publishBulkhead("run", srv.Bulkhead())
	return nil
}

// initGateway serves AuthService and builds the REST/SSE edge over every service the
// registry lists (the http module serves it).
func initGateway(ctx context.Context, a *app) error {
	cfg, err := config.Parse[gateway.Config](nil)
	if err != nil {
		return err
	}
	keys, err := a.gatewayKeys(ctx)
	if err != nil {
		return err
	}
	idempotency := gateway.NewIdempotency(a.rdb, a.cfg.RedisKeyPrefix, cfg.IdempotencyTTL, a.log)
	a.grpc.Register(&gatewayv1.AuthService_ServiceDesc, gateway.NewServer(gateway.NewStore(a.pool), keys, a.rec).
		WithMaintenance(a.maintenance("gateway", maintenance.Task{Name: "prune_idempotency", Run: idempotency.Prune})))

	backends, err := a.backends()
	if err != nil {
		return err
	}
	var limiter *gateway.RateLimiter
	if cfg.RateLimitEnabled || cfg.QuotaEnabled {
		billingConn, err := a.conn("billing")
		if err != nil {
			return err
		}
		limiter = gateway.NewRateLimiter(a.rdb, a.cfg.RedisKeyPrefix,
			cfg.RateLimitOptions(a.entitlements, billingv1.NewBillingServiceClient(billingConn)), a.rec, a.log)
	}
	stats := reqstats.New(a.rdb, a.cfg.RedisKeyPrefix, a.replica, a.log)
	a.goBackground("request stats", func(ctx context.Context) error { stats.Run(ctx, cfg.StatsFlushInterval); return nil })
	govConn, err := a.conn("governance")
	if err != nil {
		return err
	}
	policies := gateway.NewPolicies(governancev1.NewPolicyServiceClient(govConn), a.log)
	a.goBackground("policy rules", func(ctx context.Context) error { policies.Run(ctx, cfg.PolicySyncInterval); return nil })
	failoverConn, err := a.conn("failover")
	if err != nil {
		return err
	}
	writes := gateway.NewWriteGate(failoverv1.NewFailoverServiceClient(failoverConn), a.log)
	a.goBackground("write gate", func(ctx context.Context) error { writes.Run(ctx, cfg.WriteGateSyncInterval); return nil })
	var streams *gateway.RunStreams
	if cfg.RunStreamResume {
		streams = gateway.NewRunStreams(a.rdb, a.cfg.RedisKeyPrefix, cfg.RunStreamResumeTTL)
	}
	edge, err := gateway.NewEdge(ctx, cfg, backends, keys, limiter, idempotency,
		gateway.NewHealth(backends, a.pool, a.rdb, 2*time.Second), stats, policies, writes, streams, a.rec, a.tel, a.log)
	if err != nil {
		return fmt.Errorf("gateway edge: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", edge)
	mux.Handle("/console", console.Handler())
	mux.Handle("/console/", console.Handler())
	a.http = mux
	return nil
}

// backends are every service of the registry with its connection (in this process or at
// its <NAME>_GRPC_ADDR).
func (a *app) backends() ([]gateway.Backend, error) {
	return backendsOf(a.reg, a.conn)
}

// backendsOf lists every gRPC service of reg's service modules as a backend, with the
// connection conn gives for its module (nil connections when conn is nil).
func backendsOf(reg registry, conn func(module string) (*grpc.ClientConn, error)) ([]gateway.Backend, error) {
	var out []gateway.Backend
	for _, m := range reg.services() {
		var c *grpc.ClientConn
		if conn != nil {
			var err error
			if c, err = conn(m.name); err != nil {
				return nil, err
			}
		}
		out = append(out, gateway.Backend{Name: m.name, Desc: m.service.desc, Conn: c, RegisterREST: m.service.rest})
		for _, more := range m.service.also {
			short := more.desc.ServiceName[strings.LastIndex(more.desc.ServiceName, ".")+1:]
			out = append(out, gateway.Backend{Name: m.name + "/" + short, Desc: more.desc, Conn: c, RegisterREST: more.rest})
		}
	}
	return out, nil
}

// initOps serves the operators' view: health with its degradations, request metrics
// and the SLO, from what every gateway replica counted.
func initOps(_ context.Context, a *app) error {
	cfg, err := config.Parse[ops.Config](nil)
	if err != nil {
		return err
	}
	backends, err := a.backends()
	if err != nil {
		return err
	}
	ingestConn, err := a.conn("ingest")
	if err != nil {
		return err
	}
	// Each maintenance task runs in the service that owns its data.
	owners := map[string]ops.MaintenanceFunc{}
	for name, call := range map[string]func(*grpc.ClientConn) ops.MaintenanceFunc{
		"gateway": func(cc *grpc.ClientConn) ops.MaintenanceFunc {
			return maintenanceCall(gatewayv1.NewAuthServiceClient(cc).RunGatewayMaintenance,
				func(t string) *gatewayv1.RunGatewayMaintenanceRequest {
					return &gatewayv1.RunGatewayMaintenanceRequest{Task: t}
				})
		},
		"governance": func(cc *grpc.ClientConn) ops.MaintenanceFunc {
			return maintenanceCall(governancev1.NewAuditServiceClient(cc).RunAuditMaintenance,
				func(t string) *governancev1.RunAuditMaintenanceRequest {
					return &governancev1.RunAuditMaintenanceRequest{Task: t}
				})
		},
		"ui": func(cc *grpc.ClientConn) ops.MaintenanceFunc {
			return maintenanceCall(uiv1.NewUIServiceClient(cc).RunUiMaintenance,
				func(t string) *uiv1.RunUiMaintenanceRequest { return &uiv1.RunUiMaintenanceRequest{Task: t} })
		},
		"failover": func(cc *grpc.ClientConn) ops.MaintenanceFunc {
			return maintenanceCall(failoverv1.NewFailoverServiceClient(cc).RunFailoverMaintenance,
				func(t string) *failoverv1.RunFailoverMaintenanceRequest {
					return &failoverv1.RunFailoverMaintenanceRequest{Task: t}
				})
		},
		"billing": func(cc *grpc.ClientConn) ops.MaintenanceFunc {
			return maintenanceCall(billingv1.NewBillingServiceClient(cc).RunBillingMaintenance,
				func(t string) *billingv1.RunBillingMaintenanceRequest {
					return &billingv1.RunBillingMaintenanceRequest{Task: t}
				})
		},
	} {
		cc, err := a.conn(name)
		if err != nil {
			return err
		}
		owners[name] = call(cc)
	}
	breakers := map[string]ops.BreakerState{}
	for _, name := range []string{"bedrock", "vertex-search", "llm", "tts", "billing-webhook"} {
		b, err := a.breaker(name)
		if err != nil {
			return err
		}
		breakers[name] = b.State
	}
	a.grpc.Register(&opsv1.OpsService_ServiceDesc, ops.NewServer(cfg, ops.NewStore(a.pool), gateway.NewHealth(backends, a.pool, a.rdb, 2*time.Second),
		reqstats.New(a.rdb, a.cfg.RedisKeyPrefix, a.replica, a.log), ingestv1.NewIngestServiceClient(ingestConn), breakers, a.rec, a.log).
		WithMaintenance(owners))
	return nil
}

// maintenanceCall adapts a service's Run*Maintenance client method to ops.
func maintenanceCall[Req any, Res interface{ GetRun() *apiv1.MaintenanceRun }](call func(context.Context, Req, ...grpc.CallOption) (Res, error),
	request func(task string) Req) ops.MaintenanceFunc {
	return func(ctx context.Context, task string) (*apiv1.MaintenanceRun, error) {
		res, err := call(ctx, request(task))
		if err != nil {
			return nil, err
		}
		return res.GetRun(), nil
	}
}

// initUI serves the web apps' backend (/v1/ui/*).
func initUI(_ context.Context, a *app) error {
	cfg, err := config.Parse[ui.Config](nil)
	if err != nil {
		return err
	}
	var c ui.Clients
	for name, set := range map[string]func(*grpc.ClientConn){
		"ingest":     func(cc *grpc.ClientConn) { c.Ingest = ingestv1.NewIngestServiceClient(cc) },
		"retrieval":  func(cc *grpc.ClientConn) { c.Retrieval = retrievalv1.NewRetrievalServiceClient(cc) },
		"governance": func(cc *grpc.ClientConn) { c.Governance = governancev1.NewAuditServiceClient(cc) },
		"billing":    func(cc *grpc.ClientConn) { c.Billing = billingv1.NewBillingServiceClient(cc) },
	} {
		cc, err := a.conn(name)
		if err != nil {
			return err
		}
		set(cc)
	}
	store := ui.NewStore(a.pool)
	a.grpc.Register(&uiv1.UIService_ServiceDesc, ui.NewServer(store, a.keys, c, a.rdb, a.cfg.RedisKeyPrefix, a.log).
		WithMaintenance(a.maintenance("ui", store.PruneTask(time.Duration(cfg.ActionRetentionDays)*24*time.Hour))))
	return nil
}

// publishBulkhead adds a bulkhead to those the process reports to /v1/ops/metrics every
// second: one publisher per process, started with the first (loops start after every
// module is initialized, so the map is complete before it is read).
func (a *app) publishBulkhead(name string, b *bulkhead.Bulkhead) {
	if a.bulkheads == nil {
		a.bulkheads = map[string]*bulkhead.Bulkhead{}
		stats := reqstats.New(a.rdb, a.cfg.RedisKeyPrefix, a.replica, a.log)
		a.goBackground("bulkhead stats", func(ctx context.Context) error {
			ops.PublishBulkheads(ctx, stats, a.bulkheads, time.Second)
			return nil
		})
	}
	a.bulkheads[name] = b
}
