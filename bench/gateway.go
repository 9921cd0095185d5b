package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	billingv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/billing/v1"
	"github.com/nexusrag/nexusrag/internal/launch"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/config"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/services/gateway"
)

// gatewayAuthSuite: an authenticated GET through the whole gateway (auth, rate limit,
// envelope, gRPC hop to AuthService, logs, metrics, audit sampling) beside this design's
// physical limit: a bare net/http server doing the same key lookup (the gateway's
// KeyCache), the same one Redis round trip (the rate limiter's script) and one gRPC unary
// call to an empty handler over the same in-memory transport, and writing the same
// fields. The aim is 1.3x.
func gatewayAuthSuite(ctx context.Context, env *benchEnv) ([]row, error) {
	bareURL, stop, err := startBare(ctx, env)
	if err != nil {
		return nil, err
	}
	defer stop()
	// This machine's noise (two cores shared with Redis, Postgres and the load generator)
	// moves one run by 30%: the two alternate, three rounds each, and the median round of
	// each is reported.
	var gws, bares []result
	for range benchRounds {
		gw, err := load(ctx, env.httpURL+"/v1/auth/whoami", env.key, env.clients, env.duration)
		if err != nil {
			return nil, err
		}
		bare, err := load(ctx, bareURL+"/whoami", env.key, env.clients, env.duration)
		if err != nil {
			return nil, err
		}
		gws, bares = append(gws, gw), append(bares, bare)
	}
	gw, bare := median(gws), median(bares)
	const aim = "aim: within 1.3x in p50 and throughput (median of 3 alternating rounds)"
	note := func(r result) string {
		if r.errors > 0 {
			return fmt.Sprintf("%d errors", r.errors)
		}
		return fmt.Sprintf("%d requests", len(r.latencies))
	}
	return []row{
		{name: "gateway: GET /v1/auth/whoami (HTTP, auth, gRPC hop)", p50: ms(gw.quantile(.5)), p99: ms(gw.quantile(.99)), rate: fmt.Sprintf("%.0f req/s", gw.rate()), note: note(gw)},
		{name: "baseline: net/http + key lookup + rate-limit round trip + gRPC unary (empty handler)", p50: ms(bare.quantile(.5)), p99: ms(bare.quantile(.99)),
			rate: fmt.Sprintf("%.0f req/s", bare.rate()), note: note(bare)},
		{name: "ratio gateway / baseline", p50: ratio(float64(gw.quantile(.5)), float64(bare.quantile(.5))),
			p99: ratio(float64(gw.quantile(.99)), float64(bare.quantile(.99))), rate: ratio(gw.rate(), bare.rate()), note: aim},
	}, nil
}

// benchRounds is how many times the gateway and its baseline alternate.
const benchRounds = 3

// median is the round of median throughput.
func median(rs []result) result {
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b result) int { return cmp.Compare(a.rate(), b.rate()) })
	return sorted[len(sorted)/2]
}

// startBare runs the baseline in its own process (this program re-executed), so that
// like the gateway it does not share a process with the load generator.
func startBare(ctx context.Context, env *benchEnv) (string, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-bare-server", env.DBURL, "-bare-redis", env.Setting("REDIS_URL", "redis://127.0.0.1:6379/0"))
	cmd.Env = env.Vars // the platform's rate limits and key prefix: the same Redis work per request
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }
	addr, err := launch.ReadyAddr(stdout, "bare ready", "http")
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("bare server: %w", err)
	}
	return "http://" + addr, stop, nil
}

func serveBare(ctx context.Context, dbURL, redisURL string) error {
	pool, err := pgstore.Connect(ctx, dbURL, pgstore.Options{})
	if err != nil {
		return err
	}
	defer pool.Close()
	keys := gateway.NewKeyCache(gateway.NewStore(pool), logging.Discard(), time.Second, 5*time.Second)
	if err := keys.Sync(ctx); err != nil {
		return err
	}
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return err
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	gcfg, err := config.Parse[gateway.Config](nil)
	if err != nil {
		return err
	}
	// The same admission as the gateway's: buckets and, when QUOTA_ENABLED, the quota
	// counters (with limits no benchmark reaches), in one round trip.
	limiter := gateway.NewRateLimiter(rdb, os.Getenv("REDIS_KEY_PREFIX")+"bare:", gcfg.RateLimitOptions(unlimited{}, nil), nopRecorder{}, logging.Discard())
	// An empty gRPC handler (health's Check) over the in-memory transport the gateway
	// uses to reach the services of its process.
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	mem := grpcx.NewMemListener()
	go func() { _ = srv.Serve(mem) }()
	defer srv.Stop()
	conn, err := grpcx.DialMem(mem, grpcx.ClientOptions{})
	if err != nil {
		return err
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		p, err := keys.Authenticate(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if d, err := limiter.Allow(r.Context(), p.TenantID, p.KeyID, gateway.ClassRead); err != nil || !d.Allowed {
			http.Error(w, "rate limited", http.StatusTooManyRequests)
			return
		}
		if _, err := hc.Check(r.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"tenant_id": p.TenantID, "key_id": p.KeyID})
	})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf(`{"msg":"bare ready","http":%q}`+"\n", lis.Addr().String())
	hs := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); _ = hs.Close() }()
	if err := hs.Serve(lis); err != nil && err != http.ErrServerClosed {
		return err
	}
	return nil
}

// nopRecorder drops the limiter's audit events (none are made while requests pass).
type nopRecorder struct{}

func (nopRecorder) Record(context.Context, audit.Event) {}

// unlimited is a quota source with limits no benchmark reaches.
type unlimited struct{}

func (unlimited) Quota(context.Context, string) (*billingv1.Quota, error) {
	return &billingv1.Quota{DailyRequestsLimit: 1 << 50, MonthlyRequestsLimit: 1 << 50, SoftCapRatio: 1, HardCapEnabled: true}, nil
}
