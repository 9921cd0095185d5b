package gateway

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/nexusrag/nexusrag/internal/version"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Health reports every service the gateway fronts (grpc.health.v1 on their connections)
// and the gateway's own dependencies.
type Health struct {
	services map[string]serviceCheck
	pool     *pgxpool.Pool
	rdb      redis.UniversalClient
	timeout  time.Duration
}

type serviceCheck struct {
	conn    grpc.ClientConnInterface
	grpcSvc string
}

// ComponentHealth is one line of the report.
type ComponentHealth struct {
	Status    string  `json:"status"`
	LatencyMS float64 `json:"latency_ms"`
	Error     string  `json:"error,omitempty"`
}

// HealthReport is the body of GET /v1/health.
type HealthReport struct {
	Status string `json:"status"`
	// Version is the release the answering gateway runs.
	Version      string                     `json:"version"`
	Services     map[string]ComponentHealth `json:"services"`
	Dependencies map[string]ComponentHealth `json:"dependencies"`
}

// Check runs every probe concurrently, each bounded by the timeout.
func (h *Health) Check(ctx context.Context) HealthReport {
	rep := HealthReport{Status: "ok", Version: version.Version, Services: map[string]ComponentHealth{}, Dependencies: map[string]ComponentHealth{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	probe := func(into map[string]ComponentHealth, name string, fn func(context.Context) error) {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, h.timeout)
			defer cancel()
			start := time.Now()
			err := fn(cctx)
			c := ComponentHealth{Status: "ok", LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
			if err != nil {
				c.Status, c.Error = "unavailable", err.Error()
			}
			mu.Lock()
			into[name] = c
			if err != nil {
				rep.Status = "degraded"
			}
			mu.Unlock()
		})
	}
	for name, sc := range h.services {
		probe(rep.Services, name, func(ctx context.Context) error {
			res, err := healthpb.NewHealthClient(sc.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: sc.grpcSvc})
			if err != nil {
				return err
			}
			if res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return apierr.Newf(codes.Unavailable, apierr.CodeUnavailable, "%s", res.GetStatus())
			}
			return nil
		})
	}
	probe(rep.Dependencies, "postgres", h.pool.Ping)
	probe(rep.Dependencies, "redis", func(ctx context.Context) error { return h.rdb.Ping(ctx).Err() })
	wg.Wait()
	return rep
}

// ServeHTTP answers 200 with the report when everything is up, else 503 with the
// report in the error details.
func (h *Health) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rep := h.Check(r.Context())
	if rep.Status == "ok" {
		writeData(w, r, http.StatusOK, rep)
		return
	}
	details := map[string]string{}
	for name, c := range rep.Services {
		details["service."+name] = c.Status
	}
	for name, c := range rep.Dependencies {
		details["dependency."+name] = c.Status
	}
	writeError(w, r, apierr.New(codes.Unavailable, apierr.CodeUnavailable, "some components are unavailable", flatten(details)...))
}

func flatten(m map[string]string) []string {
	out := make([]string, 0, 2*len(m))
	for k, v := range m {
		out = append(out, k, v)
	}
	return out
}

// NewHealth returns the health reporter over the services the gateway fronts, and the
// gateway's own Postgres and Redis.
func NewHealth(bs []Backend, pool *pgxpool.Pool, rdb redis.UniversalClient, timeout time.Duration) *Health {
	h := &Health{services: map[string]serviceCheck{}, pool: pool, rdb: rdb, timeout: timeout}
	for _, b := range bs {
		h.services[b.Name] = serviceCheck{conn: b.Conn, grpcSvc: b.Desc.ServiceName}
	}
	return h
}
