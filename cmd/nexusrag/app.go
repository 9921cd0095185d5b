package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/breaker"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
	"github.com/nexusrag/nexusrag/services/gateway"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

// app is one process: the services it runs and what they share. Shared clients are
// created on first use, so a process opens only what its services need.
type app struct {
	cfg     platformConfig
	log     *slog.Logger
	tel     *telemetry.Telemetry
	enabled map[string]bool

	grpc    *grpcx.Server
	grpcLis net.Listener       // GRPC_ADDR, for other processes and operators
	memLis  *grpcx.MemListener // for this process's own services
	http    *http.ServeMux
	httpLis net.Listener // nil unless the gateway runs here
	metrics net.Listener // METRICS_ADDR

	keys      *svcauth.Keyring // service credentials (ADR 0011)
	tokens    *svcauth.Issuer
	clientTLS *tls.Config // for calls to other processes; nil: plaintext
	keyCache  *gateway.KeyCache

	pool  *pgxpool.Pool
	rdb   *redis.Client
	conns map[string]*grpc.ClientConn
	rec   *audit.Recorder

	extCfg         *extcall.Config
	breakerMetrics *breaker.Metrics

	bgMu sync.Mutex
	bg   []background

	closers []func() error // run last, after gRPC has drained
}

// onClose registers a release to run at shutdown, after every server has stopped.
func (a *app) onClose(fn func() error) { a.closers = append(a.closers, fn) }

type background struct {
	name string
	run  func(context.Context) error
}

// selectServices parses --services: a comma-separated list, or "all".
func selectServices(flag string) (map[string]bool, error) {
	known := []string{}
	for _, m := range modules() {
		known = append(known, m.name)
	}
	out := map[string]bool{}
	for _, s := range strings.Split(flag, ",") {
		s = strings.TrimSpace(strings.ToLower(s))
		switch {
		case s == "":
		case s == "all":
			for _, k := range known {
				out[k] = true
			}
		case slices.Contains(known, s):
			out[s] = true
		default:
			return nil, fmt.Errorf("--services: unknown service %q (available: all, %s)", s, strings.Join(known, ", "))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("--services: name at least one service")
	}
	return out, nil
}

// postgres returns the shared pool.
func (a *app) postgres(ctx context.Context) (*pgxpool.Pool, error) {
	if a.pool == nil {
		pool, err := pgstore.Connect(ctx, a.cfg.DatabaseURL, pgstore.Options{
			MaxConns: a.cfg.DBMaxConns, Application: "nexusrag", RuntimeParams: retrieval.SessionParams()})
		if err != nil {
			return nil, fmt.Errorf("DATABASE_URL: %w", err)
		}
		a.pool = pool
	}
	return a.pool, nil
}

// redis returns the shared client. A Redis that is down at start-up is not fatal: the
// client reconnects, and the features that need Redis report it per request.
func (a *app) redis(ctx context.Context) (*redis.Client, error) {
	if a.rdb == nil {
		opts, err := redis.ParseURL(a.cfg.RedisURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		a.rdb = redis.NewClient(opts)
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if err := a.rdb.Ping(pctx).Err(); err != nil {
			a.log.WarnContext(ctx, "redis is not reachable yet", "addr", opts.Addr, "error", err)
		}
	}
	return a.rdb, nil
}

// conn returns the client connection to a service: over memory when the service runs
// in this process, else to the address configured for it. Either way every call carries
// this process's service token.
func (a *app) conn(service string) (*grpc.ClientConn, error) {
	if c, ok := a.conns[service]; ok {
		return c, nil
	}
	opts := grpcx.ClientOptions{Tokens: a.tokens, TLS: a.clientTLS, Telemetry: a.tel}
	var c *grpc.ClientConn
	var err error
	if a.enabled[service] {
		c, err = grpcx.DialMem(a.memLis, opts)
	} else {
		addr, variable := a.cfg.remoteAddr(service)
		if addr == "" {
			return nil, fmt.Errorf("%s is required: service %s does not run in this process", variable, service)
		}
		c, err = grpcx.Dial(addr, opts)
	}
	if err != nil {
		return nil, err
	}
	a.conns[service] = c
	return c, nil
}

// serviceKeys loads the keys of the process's service tokens. Without configured keys
// a process that runs every service makes an ephemeral key: nothing outside it needs to
// verify its calls. A split process must share keys with the others.
func (a *app) serviceKeys() (*svcauth.Keyring, error) {
	switch {
	case a.cfg.ServiceKeysFile != "":
		keys, err := svcauth.LoadFile(a.cfg.ServiceKeysFile)
		if err != nil {
			return nil, fmt.Errorf("SERVICE_AUTH_KEYS_FILE: %w", err)
		}
		a.goBackground("service key reload", func(ctx context.Context) error {
			keys.Watch(ctx, a.cfg.ServiceKeysReload, a.log)
			return nil
		})
		return keys, nil
	case len(a.cfg.ServiceKeys) > 0:
		keys, err := svcauth.FromSecrets(a.cfg.ServiceKeys)
		if err != nil {
			return nil, fmt.Errorf("SERVICE_AUTH_KEYS: %w", err)
		}
		return keys, nil
	case len(a.enabled) == len(modules()):
		a.log.Info("service credentials: an ephemeral key, since every service runs in this process (set SERVICE_AUTH_KEYS_FILE to share keys with other processes)")
		return svcauth.Ephemeral(), nil
	}
	return nil, fmt.Errorf("SERVICE_AUTH_KEYS_FILE is required: this process runs %s and calls or serves services in other processes, "+
		"which verify its calls with the same keys (`nexusrag servicekey create --out FILE` makes a keys file)", strings.Join(a.serviceNames(), ","))
}

// apiKeys returns what authenticates operators' API keys on the gRPC port: the gateway's
// key cache when the gateway runs here, else the gateway's AuthenticateApiKey at
// GATEWAY_GRPC_ADDR, else nothing (API keys are then refused with a message saying so).
func (a *app) apiKeys(ctx context.Context) (grpcx.KeyAuthenticator, error) {
	if a.enabled["gateway"] {
		return a.gatewayKeys(ctx)
	}
	if addr, _ := a.cfg.remoteAddr("gateway"); addr == "" {
		a.log.Info("API keys are refused on this process's gRPC port: set GATEWAY_GRPC_ADDR to accept operators' keys")
		return nil, nil
	}
	conn, err := a.conn("gateway")
	if err != nil {
		return nil, err
	}
	return gateway.NewKeyClient(gatewayv1.NewAuthServiceClient(conn), a.cfg.RemoteKeyCacheTTL), nil
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
	pool, err := a.postgres(ctx)
	if err != nil {
		return nil, err
	}
	keys := gateway.NewKeyCache(gateway.NewStore(pool), a.log, cfg.AuthKeySyncInterval, cfg.AuthNegativeCacheTTL)
	syncCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := keys.Sync(syncCtx); err != nil {
		a.log.WarnContext(ctx, "initial api key load failed; keys are looked up on demand until the next sync", "error", err)
	}
	a.goBackground("api key sync", func(ctx context.Context) error { keys.Run(ctx); return nil })
	a.keyCache = keys
	return keys, nil
}

// recorder returns the process's audit recorder, which sends to the governance service.
func (a *app) recorder() (*audit.Recorder, error) {
	if a.rec == nil {
		c, err := a.conn("governance")
		if err != nil {
			return nil, err
		}
		a.rec = audit.NewRecorder(governancev1.NewAuditServiceClient(c), a.log, audit.Options{Registerer: a.tel.Registry})
		a.rec.Start()
	}
	return a.rec, nil
}

// external returns the client for calls to an external integration (a retrieval
// provider, the LLM, TTS): EXT_CALL_TIMEOUT_MS, EXT_RETRY_* and a circuit breaker whose
// state is shared through Redis (CB_*).
func (a *app) external(ctx context.Context, integration string) (*extcall.Client, error) {
	if a.extCfg == nil {
		cfg, err := config.Parse[extcall.Config](nil)
		if err != nil {
			return nil, err
		}
		a.extCfg = &cfg
		a.breakerMetrics = breaker.NewMetrics(a.tel.Registry)
	}
	rdb, err := a.redis(ctx)
	if err != nil {
		return nil, err
	}
	br := breaker.New(rdb, a.cfg.RedisKeyPrefix, integration, a.extCfg.Breaker(), a.breakerMetrics, a.log)
	return extcall.New(integration, a.extCfg.Policy(), br), nil
}

// onForbidden audits calls refused for a too-low role (or an API key on an internal
// method), in whichever service refused them.
func (a *app) onForbidden(ctx context.Context, method string, p principal.Principal, need string) {
	rec, err := a.recorder()
	if err != nil {
		a.log.WarnContext(ctx, "cannot audit rbac.forbidden", "error", err)
		return
	}
	rec.Record(ctx, audit.Event{
		Type: audit.TypeRBACForbidden, Outcome: audit.OutcomeDenied, TenantID: p.TenantID,
		ActorType: audit.ActorAPIKey, ActorID: p.KeyID, ResourceType: "rpc", ResourceID: method,
		Metadata: map[string]any{"role": principal.RoleName(p.Role), "required_role": need},
	})
}

// goBackground registers a loop that runs while the process serves.
func (a *app) goBackground(name string, run func(context.Context) error) {
	a.bgMu.Lock()
	defer a.bgMu.Unlock()
	a.bg = append(a.bg, background{name: name, run: run})
}

// run serves until ctx ends, then shuts down in dependency order: the HTTP edge drains
// first, background loops stop, the audit recorder flushes (governance still serves),
// then gRPC drains, then shared clients close.
func (a *app) run(ctx context.Context) error {
	httpSrv := &http.Server{Handler: a.http, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	opsSrv := &http.Server{Handler: a.operatorHandler(), ReadHeaderTimeout: 10 * time.Second}
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	serving, serveCtx := errgroup.WithContext(ctx)
	serving.Go(func() error { return a.grpc.Serve(a.grpcLis) })
	serving.Go(func() error { return a.grpc.Serve(a.memLis) })
	serveHTTP := func(srv *http.Server, lis net.Listener, variable string) {
		serving.Go(func() error {
			if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s: serve on %s: %w", variable, lis.Addr(), err)
			}
			return nil
		})
	}
	if a.httpLis != nil {
		serveHTTP(httpSrv, a.httpLis, "HTTP_ADDR")
	}
	serveHTTP(opsSrv, a.metrics, "METRICS_ADDR")
	var bgWG sync.WaitGroup
	for _, b := range a.bg {
		bgWG.Go(func() {
			if err := b.run(bgCtx); err != nil {
				a.log.Error("background loop failed", "loop", b.name, "error", err)
			}
		})
	}
	ready := []any{"services", a.serviceNames(), "grpc", a.grpcLis.Addr().String(), "metrics", a.metrics.Addr().String(),
		"service_key_id", a.keys.KeyID(), "grpc_tls", a.cfg.GRPCTLSCertFile != ""}
	if a.httpLis != nil {
		ready = append(ready, "http", a.httpLis.Addr().String())
	}
	a.log.Info("nexusrag ready", ready...)

	<-serveCtx.Done()
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	shCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if a.httpLis != nil {
		if err := httpSrv.Shutdown(shCtx); err != nil {
			a.log.Warn("http shutdown incomplete", "error", err)
		}
	}
	stopBG()
	bgWG.Wait()
	if a.rec != nil {
		if err := a.rec.Close(shCtx); err != nil {
			a.log.Error("audit events lost at shutdown", "error", err)
		}
	}
	a.grpc.Stop(shCtx)
	_ = opsSrv.Close() // last, so that metrics can be scraped while draining
	err := serving.Wait()
	a.close()
	if err != nil {
		return err
	}
	a.log.Info("stopped")
	return nil
}

// operatorHandler serves the operator listener (METRICS_ADDR): Prometheus metrics, and
// the runtime profiles when PPROF_ENABLED (or the retired DEBUG_ADDR) asks for them.
func (a *app) operatorHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(a.tel.Registry, promhttp.HandlerOpts{}))
	if a.cfg.PprofEnabled || a.cfg.DebugAddr != "" {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

func (a *app) close() {
	for _, fn := range a.closers {
		if err := fn(); err != nil {
			a.log.Warn("release at shutdown", "error", err)
		}
	}
	for _, c := range a.conns {
		_ = c.Close()
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.pool != nil {
		a.pool.Close()
	}
	_ = a.tel.Shutdown(context.Background())
}

func (a *app) serviceNames() []string {
	var out []string
	for _, m := range modules() {
		if a.enabled[m.name] {
			out = append(out, m.name)
		}
	}
	return out
}
