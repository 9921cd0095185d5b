package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"

	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/breaker"
	"github.com/nexusrag/nexusrag/pkg/bulkhead"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/rollouts"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
	"github.com/nexusrag/nexusrag/services/failover"
	"github.com/nexusrag/nexusrag/services/gateway"
	"github.com/nexusrag/nexusrag/services/governance"
)

// app is one process: the modules it runs and what they share. The registry decides
// what starts and in which order; each module's init fills in what it provides.
type app struct {
	cfg   platformConfig
	log   *slog.Logger
	tel   *telemetry.Telemetry
	reg   registry
	plan  plan
	local map[string]bool   // services this process runs
	addrs map[string]string // where the others run (<NAME>_GRPC_ADDR)

	// Provided by infrastructure modules.
	pool      *pgxpool.Pool
	rdb       *redis.Client
	keys      *svcauth.Keyring // service credentials (ADR 0011)
	tokens    *svcauth.Issuer
	clientTLS *tls.Config // for calls to other processes; nil: plaintext
	apiKeys   grpcx.KeyAuthenticator
	keyCache  *gateway.KeyCache // when the gateway runs here
	grpc      *grpcx.Server
	memLis    *grpcx.MemListener
	grpcLis   net.Listener // GRPC_ADDR, when the process listens
	metrics   net.Listener // METRICS_ADDR, when the process listens
	http      *http.ServeMux
	httpLis   net.Listener
	rec       *audit.Recorder
	// entitlements answers what tenants' plans allow (pkg/entitlements, fed by billing).
	entitlements *entitlements.Cache
	rollouts     *rollouts.Cache
	conns        map[string]*grpc.ClientConn
	// replica names this process among its service's replicas (its gauges in Redis).
	replica string
	// command marks an operator command's process (openApp): it runs no schedules.
	command bool
	// failover is the failover service, when it runs here (the backup commands drive it).
	failover *failover.Server
	// governance is the governance engine (retention runs, DSARs), when governance runs here.
	governance *governance.Engine
	// bulkheads are the process's bulkheads, reported to the ops metrics.
	bulkheads map[string]*bulkhead.Bulkhead

	extCfg         *extcall.Config
	breakerMetrics *breaker.Metrics

	started []*running
	current *running // the module being initialized
	failed  chan error
	bgCtx   context.Context
	stopBG  context.CancelFunc
}

// running is a started module: the loops it runs while the process serves and what
// releases it.
type running struct {
	name   string
	loops  []loop
	stops  []func(context.Context) error
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type loop struct {
	name string
	run  func(context.Context) error
	// fatal loops (servers) stop the process when they fail; the others are logged.
	fatal bool
}

// newApp makes a process of the modules of plan p, from the registry reg.
func newApp(cfg platformConfig, log *slog.Logger, tel *telemetry.Telemetry, reg registry, p plan) (*app, error) {
	a := &app{cfg: cfg, log: log, tel: tel, reg: reg, plan: p, local: map[string]bool{}, addrs: map[string]string{},
		conns: map[string]*grpc.ClientConn{}, failed: make(chan error, 1), replica: replicaName()}
	for _, m := range p.order {
		if m.service != nil {
			a.local[m.name] = true
		}
	}
	// Every service not run here may be reached at its address; those the plan depends
	// on must be.
	for _, s := range reg.serviceNames() {
		v := addrVariable(s)
		addr := os.Getenv(v)
		switch {
		case a.local[s]:
		case addr != "":
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return nil, fmt.Errorf("%s: %q is not host:port", v, addr)
			}
			a.addrs[s] = addr
		case slices.Contains(p.remote, s):
			return nil, fmt.Errorf("%s is required: service %s does not run in this process", v, s)
		}
	}
	return a, nil
}

// start initializes every module in order, then starts their loops. On an error the
// modules already started are stopped again.
func (a *app) start(ctx context.Context) error {
	a.bgCtx, a.stopBG = context.WithCancel(context.WithoutCancel(ctx))
	for _, m := range a.plan.order {
		a.current = &running{name: m.name}
		a.started = append(a.started, a.current)
		if err := m.init(ctx, a); err != nil {
			a.current = nil
			_ = a.stop()
			return fmt.Errorf("start %s: %w", m.name, err)
		}
	}
	a.current = nil
	for _, r := range a.started {
		lctx, cancel := context.WithCancel(a.bgCtx)
		r.cancel = cancel
		for _, l := range r.loops {
			r.wg.Go(func() {
				err := l.run(lctx)
				switch {
				case err == nil || lctx.Err() != nil:
				case l.fatal:
					select {
					case a.failed <- fmt.Errorf("%s: %w", l.name, err):
					default:
					}
				default:
					a.log.Error("background loop failed", "module", r.name, "loop", l.name, "error", err)
				}
			})
		}
	}
	return nil
}

// wait returns when ctx ends (nil) or a server fails (its error).
func (a *app) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-a.failed:
		return err
	}
}

// stop stops the modules in the reverse of their start order: each runs its stop
// functions, then its loops are canceled and awaited. The whole takes at most
// SHUTDOWN_TIMEOUT. The error joins what did not stop cleanly (audit events that could
// not be flushed, for one).
func (a *app) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer cancel()
	var errs []error
	for i := len(a.started) - 1; i >= 0; i-- {
		r := a.started[i]
		for _, fn := range r.stops {
			if err := fn(ctx); err != nil {
				errs = append(errs, fmt.Errorf("stop %s: %w", r.name, err))
			}
		}
		if r.cancel != nil {
			r.cancel()
		}
		r.wg.Wait()
	}
	if a.stopBG != nil {
		a.stopBG()
	}
	_ = a.tel.Shutdown(ctx)
	return errors.Join(errs...)
}

// goBackground runs a loop of the module being initialized while the process serves.
// maintenance returns the runner of a service's maintenance tasks and, in a serving
// process, schedules them every MAINTENANCE_INTERVAL.
func (a *app) maintenance(owner string, tasks ...maintenance.Task) *maintenance.Runner {
	r := maintenance.NewRunner(owner, a.rdb, a.cfg.RedisKeyPrefix, a.rec, a.log, tasks...)
	if !a.command {
		a.goBackground(owner+" maintenance", func(ctx context.Context) error { r.Schedule(ctx, a.cfg.MaintenanceInterval); return nil })
	}
	return r
}

func (a *app) goBackground(name string, run func(context.Context) error) {
	a.current.loops = append(a.current.loops, loop{name: name, run: run})
}

// goServe runs a server of the module being initialized; its failure stops the process.
func (a *app) goServe(name string, run func(context.Context) error) {
	a.current.loops = append(a.current.loops, loop{name: name, run: run, fatal: true})
}

// onStop registers a release of the module being initialized.
func (a *app) onStop(fn func(context.Context) error) {
	a.current.stops = append(a.current.stops, fn)
}

// conn returns the client connection to a service: over memory when the service runs
// in this process, else to its address. Either way every call carries this process's
// service token.
func (a *app) conn(service string) (*grpc.ClientConn, error) {
	if c, ok := a.conns[service]; ok {
		return c, nil
	}
	opts := grpcx.ClientOptions{Tokens: a.tokens, TLS: a.clientTLS, Telemetry: a.tel}
	var c *grpc.ClientConn
	var err error
	switch addr, remote := a.addrs[service]; {
	case a.local[service]:
		c, err = grpcx.DialMem(a.memLis, opts)
	case remote:
		c, err = grpcx.Dial(addr, opts)
	default:
		return nil, fmt.Errorf("%s is required: service %s does not run in this process", addrVariable(service), service)
	}
	if err != nil {
		return nil, err
	}
	a.conns[service] = c
	return c, nil
}

// external returns the client for calls to an external integration (a retrieval
// provider, the LLM, TTS): EXT_CALL_TIMEOUT_MS, EXT_RETRY_* and a circuit breaker whose
// state is shared through Redis (CB_*).
func (a *app) external(integration string) (*extcall.Client, error) {
	br, err := a.breaker(integration)
	if err != nil {
		return nil, err
	}
	return extcall.New(integration, a.extCfg.Policy(), br), nil
}

// breaker returns the circuit breaker of an integration (CB_*), shared through Redis.
func (a *app) breaker(integration string) (*breaker.Breaker, error) {
	if a.extCfg == nil {
		cfg, err := config.Parse[extcall.Config](nil)
		if err != nil {
			return nil, err
		}
		a.extCfg = &cfg
		a.breakerMetrics = breaker.NewMetrics(a.tel.Registry)
	}
	return breaker.New(a.rdb, a.cfg.RedisKeyPrefix, integration, a.extCfg.Breaker(), a.breakerMetrics, a.log), nil
}

// serviceNames are the services this process runs, in start order.
func (a *app) serviceNames() []string {
	var out []string
	for _, m := range a.plan.order {
		if m.service != nil {
			out = append(out, m.name)
		}
	}
	return out
}

// runsEverything reports whether every service runs in this process.
func (a *app) runsEverything() bool { return len(a.local) == len(a.reg.services()) }

func (a *app) readyAttrs() []any {
	attrs := []any{"services", a.serviceNames(), "modules", len(a.plan.order)}
	if a.grpcLis != nil {
		attrs = append(attrs, "grpc", a.grpcLis.Addr().String(), "grpc_tls", a.cfg.GRPCTLSCertFile != "")
	}
	if a.metrics != nil {
		attrs = append(attrs, "metrics", a.metrics.Addr().String())
	}
	if a.httpLis != nil {
		attrs = append(attrs, "http", a.httpLis.Addr().String())
	}
	if a.keys != nil {
		attrs = append(attrs, "service_key_id", a.keys.KeyID())
	}
	return attrs
}

// httpServe serves srv on lis as a loop of the current module, shut down gracefully
// when the module stops.
func (a *app) httpServe(name string, srv *http.Server, lis net.Listener, variable string) {
	a.goServe(name, func(context.Context) error {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: serve on %s: %w", variable, lis.Addr(), err)
		}
		return nil
	})
	a.onStop(func(ctx context.Context) error {
		if err := srv.Shutdown(ctx); err != nil {
			return fmt.Errorf("%s: %w", variable, err)
		}
		return nil
	})
}

// listenTCP opens addr, naming the variable on failure.
func listenTCP(addr, variable string) (net.Listener, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: listen on %s: %w", variable, addr, err)
	}
	return lis, nil
}

// issuerName names the process in its service tokens: the services it runs.
func (a *app) issuerName() string {
	if names := a.serviceNames(); len(names) > 0 {
		return strings.Join(names, ",")
	}
	return "nexusrag"
}

// replicaName is the host name and a random suffix: unique among replicas and restarts.
func replicaName() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}
