package main

import (
	"context"
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

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/breaker"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
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
	grpcLis net.Listener
	http    *http.ServeMux
	httpLis net.Listener

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

// conn returns the client connection to a service: this process's own gRPC listener
// when the service runs here, else the address configured for it.
func (a *app) conn(service string) (*grpc.ClientConn, error) {
	if c, ok := a.conns[service]; ok {
		return c, nil
	}
	target := a.grpcLis.Addr().String()
	if !a.enabled[service] {
		addr, variable := a.cfg.remoteAddr(service)
		if addr == "" {
			return nil, fmt.Errorf("%s is required: service %s does not run in this process", variable, service)
		}
		target = addr
	}
	c, err := grpcx.Dial(target, a.tel)
	if err != nil {
		return nil, err
	}
	a.conns[service] = c
	return c, nil
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

// onForbidden audits calls refused for a too-low role, in whichever service refused them.
func (a *app) onForbidden(ctx context.Context, method string, p principal.Principal, need apiv1.Role) {
	rec, err := a.recorder()
	if err != nil {
		a.log.WarnContext(ctx, "cannot audit rbac.forbidden", "error", err)
		return
	}
	rec.Record(ctx, audit.Event{
		Type: audit.TypeRBACForbidden, Outcome: audit.OutcomeDenied, TenantID: p.TenantID,
		ActorType: audit.ActorAPIKey, ActorID: p.KeyID, ResourceType: "rpc", ResourceID: method,
		Metadata: map[string]any{"role": principal.RoleName(p.Role), "required_role": principal.RoleName(need)},
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
	bgCtx, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	serving, serveCtx := errgroup.WithContext(ctx)
	serving.Go(func() error { return a.grpc.Serve(a.grpcLis) })
	serving.Go(func() error {
		if err := httpSrv.Serve(a.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http serve on %s: %w", a.httpLis.Addr(), err)
		}
		return nil
	})
	if a.cfg.DebugAddr != "" {
		dbg := &http.Server{Addr: a.cfg.DebugAddr, Handler: debugHandler(), ReadHeaderTimeout: 10 * time.Second}
		serving.Go(func() error {
			<-serveCtx.Done()
			return dbg.Close()
		})
		serving.Go(func() error {
			if err := dbg.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("DEBUG_ADDR: %w", err)
			}
			return nil
		})
	}
	var bgWG sync.WaitGroup
	for _, b := range a.bg {
		bgWG.Go(func() {
			if err := b.run(bgCtx); err != nil {
				a.log.Error("background loop failed", "loop", b.name, "error", err)
			}
		})
	}
	a.log.Info("nexusrag ready", "services", a.serviceNames(), "http", a.httpLis.Addr().String(), "grpc", a.grpcLis.Addr().String())

	<-serveCtx.Done()
	a.log.Info("shutting down", "timeout", a.cfg.ShutdownTimeout.String())
	shCtx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	if err := httpSrv.Shutdown(shCtx); err != nil {
		a.log.Warn("http shutdown incomplete", "error", err)
	}
	stopBG()
	bgWG.Wait()
	if a.rec != nil {
		if err := a.rec.Close(shCtx); err != nil {
			a.log.Error("audit events lost at shutdown", "error", err)
		}
	}
	a.grpc.Stop(shCtx)
	err := serving.Wait()
	a.close()
	if err != nil {
		return err
	}
	a.log.Info("stopped")
	return nil
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

// debugHandler serves the runtime profiles (net/http/pprof) on the debug listener only.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func metricsHandler(tel *telemetry.Telemetry) http.Handler {
	return promhttp.HandlerFor(tel.Registry, promhttp.HandlerOpts{})
}
