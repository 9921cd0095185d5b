package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	opsv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ops/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/rollouts"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/services/gateway"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

// The infrastructure modules, in the order a process usually starts them.
const (
	modMetrics      = "metrics"
	modPostgres     = "postgres"
	modRedis        = "redis"
	modServiceKeys  = "service-keys"
	modAPIKeys      = "api-keys"
	modGRPCServer   = "grpc-server"
	modAudit        = "audit"
	modEntitlements = "entitlements"
	modRollouts     = "rollouts"
	modGRPCListener = "grpc-listener"
	// modGovernanceWork carries out retention runs and DSARs through the services that
	// own the rows; it runs where governance serves, never in an operator command.
	modGovernanceWork = "governance-work"
	modHTTP           = "http"
)

// initMetrics opens the operator listener: /metrics, and /debug/pprof when PPROF_ENABLED
// (or the retired DEBUG_ADDR) asks for it.
func initMetrics(_ context.Context, a *app) error {
	lis, err := listenTCP(a.cfg.MetricsAddr, "METRICS_ADDR")
	if err != nil {
		return err
	}
	a.metrics = lis
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.tel.Registry, promhttp.HandlerOpts{}))
	if a.cfg.PprofEnabled || a.cfg.DebugAddr != "" {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	a.httpServe("metrics", &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, lis, "METRICS_ADDR")
	return nil
}

// initPostgres opens the process's pool.
func initPostgres(ctx context.Context, a *app) error {
	pool, err := pgstore.Connect(ctx, a.cfg.DatabaseURL, pgstore.Options{
		MaxConns: a.cfg.DBMaxConns, Application: "nexusrag", RuntimeParams: retrieval.SessionParams()})
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	a.pool = pool
	a.onStop(func(context.Context) error { pool.Close(); return nil })
	return nil
}

// initRedis makes the process's client. A Redis that is down at start-up is not fatal:
// the client reconnects, and the features that need Redis report it per request.
func initRedis(ctx context.Context, a *app) error {
	opts, err := redis.ParseURL(a.cfg.RedisURL)
	if err != nil {
		return fmt.Errorf("REDIS_URL: %w", err)
	}
	a.rdb = redis.NewClient(opts)
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := a.rdb.Ping(pctx).Err(); err != nil {
		a.log.WarnContext(ctx, "redis is not reachable yet", "addr", opts.Addr, "error", err)
	}
	a.onStop(func(context.Context) error { return a.rdb.Close() })
	return nil
}

// initServiceKeys loads the keys of the process's service tokens. Without configured
// keys, a process that talks to no other process (it runs every service it needs, and
// listens for none but operators) makes an ephemeral key. A split process must share
// keys with the others.
func initServiceKeys(_ context.Context, a *app) error {
	switch {
	case a.cfg.ServiceKeysFile != "":
		keys, err := svcauth.LoadFile(a.cfg.ServiceKeysFile)
		if err != nil {
			return fmt.Errorf("SERVICE_AUTH_KEYS_FILE: %w", err)
		}
		a.goBackground("service key reload", func(ctx context.Context) error {
			keys.Watch(ctx, a.cfg.ServiceKeysReload, a.log)
			return nil
		})
		a.keys = keys
	case len(a.cfg.ServiceKeys) > 0:
		keys, err := svcauth.FromSecrets(a.cfg.ServiceKeys)
		if err != nil {
			return fmt.Errorf("SERVICE_AUTH_KEYS: %w", err)
		}
		a.keys = keys
	case len(a.plan.remote) == 0 && (a.runsEverything() || !a.listens()):
		a.keys = svcauth.Ephemeral()
	default:
		return fmt.Errorf("SERVICE_AUTH_KEYS_FILE is required: this process runs %s and talks to services in other processes, "+
			"which verify its calls with the same keys (`nexusrag servicekey create --out FILE` makes a keys file)", a.issuerName())
	}
	a.tokens = svcauth.NewIssuer(a.keys, a.issuerName(), a.cfg.ServiceTokenTTL)
	if a.cfg.GRPCTLSCAFile != "" || a.cfg.GRPCTLSServerName != "" {
		var err error
		if a.clientTLS, err = grpcx.ClientTLS(a.cfg.GRPCTLSCAFile, a.cfg.GRPCTLSServerName); err != nil {
			return err
		}
	}
	return nil
}

// listens reports whether the plan opens the gRPC listener for other processes.
func (a *app) listens() bool {
	for _, m := range a.plan.order {
		if m.name == modGRPCListener {
			return true
		}
	}
	return false
}

// initAPIKeys sets what authenticates operators' API keys on the gRPC port: the
// gateway's key cache when the gateway runs here, else the gateway's AuthenticateApiKey
// at GATEWAY_GRPC_ADDR, else nothing (API keys are then refused with a message saying so).
func initAPIKeys(ctx context.Context, a *app) error {
	if a.local["gateway"] {
		cache, err := a.gatewayKeys(ctx)
		if err != nil {
			return err
		}
		a.apiKeys = cache
		return nil
	}
	if _, ok := a.addrs["gateway"]; !ok {
		if a.listens() {
			a.log.Info("API keys are refused on this process's gRPC port: set GATEWAY_GRPC_ADDR to accept operators' keys")
		}
		return nil
	}
	conn, err := a.conn("gateway")
	if err != nil {
		return err
	}
	a.apiKeys = gateway.NewKeyClient(gatewayv1.NewAuthServiceClient(conn), a.cfg.RemoteKeyCacheTTL)
	return nil
}

// gatewayKeys returns the process's API key cache, loaded and kept in sync from the
// gateway schema (the gateway module's; the gRPC port shares it).
func (a *app) gatewayKeys(ctx context.Context) (*gateway.KeyCache, error) {
	if a.keyCache != nil {
		return a.keyCache, nil
	}
	cfg, err := config.Parse[gateway.Config](nil)
	if err != nil {
		return nil, err
	}
	keys := gateway.NewKeyCache(gateway.NewStore(a.pool), a.log, cfg.AuthKeySyncInterval, cfg.AuthNegativeCacheTTL)
	syncCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := keys.Sync(syncCtx); err != nil {
		a.log.WarnContext(ctx, "initial api key load failed; keys are looked up on demand until the next sync", "error", err)
	}
	a.goBackground("api key sync", func(ctx context.Context) error { keys.Run(ctx); return nil })
	a.keyCache = keys
	return keys, nil
}

// initGRPCServer builds the gRPC server every service registers on, and serves it to
// the process's own services over memory.
func initGRPCServer(_ context.Context, a *app) error {
	a.grpc = grpcx.NewServer(grpcx.ServerOptions{Log: a.log, Telemetry: a.tel, Keys: a.keys, APIKeys: a.apiKeys, OnForbidden: a.onForbidden})
	a.memLis = grpcx.NewMemListener()
	a.goServe("grpc in-memory", func(context.Context) error { return a.grpc.ServeMem(a.memLis) })
	a.onStop(func(ctx context.Context) error {
		a.grpc.Stop(ctx)
		for _, c := range a.conns {
			_ = c.Close()
		}
		return nil
	})
	return nil
}

// initGRPCListener opens GRPC_ADDR (TLS when GRPC_TLS_CERT_FILE is set) for other
// processes and operators. It starts after every service of the process has registered,
// and on stop drains outside callers first.
func initGRPCListener(_ context.Context, a *app) error {
	lis, err := listenTCP(a.cfg.GRPCAddr, "GRPC_ADDR")
	if err != nil {
		return err
	}
	if a.cfg.GRPCTLSCertFile != "" {
		tlsCfg, err := grpcx.ServerTLS(a.cfg.GRPCTLSCertFile, a.cfg.GRPCTLSKeyFile)
		if err != nil {
			_ = lis.Close()
			return err
		}
		lis = grpcx.ListenTLS(lis, tlsCfg)
	}
	a.grpcLis = lis
	a.goServe("grpc", func(context.Context) error { return a.grpc.Serve(lis) })
	a.onStop(func(ctx context.Context) error { a.grpc.StopExternal(ctx); return nil })
	return nil
}

// initAudit starts the process's audit recorder, which sends to the governance service;
// on stop it flushes what is buffered while governance still serves.
func initAudit(_ context.Context, a *app) error {
	c, err := a.conn("governance")
	if err != nil {
		return err
	}
	a.rec = audit.NewRecorder(governancev1.NewAuditServiceClient(c), a.log, audit.Options{Registerer: a.tel.Registry})
	a.rec.Start()
	a.onStop(func(ctx context.Context) error {
		if err := a.rec.Close(ctx); err != nil {
			return fmt.Errorf("audit events lost at shutdown: %w", err)
		}
		return nil
	})
	return nil
}

// initEntitlements gives the process its entitlement cache, fed by the billing service:
// the gRPC server checks each method's feature with it, and services check theirs.
func initEntitlements(_ context.Context, a *app) error {
	c, err := a.conn("billing")
	if err != nil {
		return err
	}
	cache := entitlements.NewCache(billingv1.NewBillingServiceClient(c), a.log)
	a.entitlements = cache
	a.grpc.SetEntitlements(cache)
	a.goBackground("entitlements", func(ctx context.Context) error {
		cache.Run(ctx, a.cfg.EntitlementsSyncInterval)
		return nil
	})
	return nil
}

// initRollouts follows the kill switches and canaries of the ops service.
func initRollouts(_ context.Context, a *app) error {
	c, err := a.conn("ops")
	if err != nil {
		return err
	}
	cache := rollouts.NewCache(opsv1.NewOpsServiceClient(c), a.log)
	a.rollouts = cache
	a.goBackground("rollouts", func(ctx context.Context) error {
		cache.Run(ctx, a.cfg.RolloutSyncInterval)
		return nil
	})
	return nil
}

// onForbidden audits calls refused for a too-low role, an API key on an internal method
// or a feature the tenant's plan lacks, in whichever service refused them.
func (a *app) onForbidden(ctx context.Context, method string, p principal.Principal, need string) {
	if a.rec == nil {
		a.log.WarnContext(ctx, "cannot audit rbac.forbidden: no audit recorder in this process", "method", method)
		return
	}
	md := map[string]any{"role": principal.RoleName(p.Role), "required_role": need}
	if entitlements.Known(need) {
		md = map[string]any{"role": principal.RoleName(p.Role), "required_feature": need}
	}
	a.rec.Record(ctx, audit.Event{
		Type: audit.TypeRBACForbidden, Outcome: audit.OutcomeFailure, TenantID: p.TenantID,
		ActorType: audit.ActorAPIKey, ActorID: p.KeyID, ResourceType: "rpc", ResourceID: method, Metadata: md,
	})
}

// initHTTP opens HTTP_ADDR for the gateway's edge; on stop it drains first of all.
func initHTTP(_ context.Context, a *app) error {
	lis, err := listenTCP(a.cfg.HTTPAddr, "HTTP_ADDR")
	if err != nil {
		return err
	}
	a.httpLis = lis
	a.httpServe("http", &http.Server{Handler: a.http, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}, lis, "HTTP_ADDR")
	return nil
}
