package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	failoverv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/failover/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/follow"
)

// CodeWritesFrozen answers a write while this region takes none (README "Failover").
const CodeWritesFrozen = "WRITES_FROZEN"

// failoverRoutes stay open while writes are frozen: they are how an operator unfreezes.
const failoverRoutes = "/v1/ops/failover/"

// WriteGate follows whether this region takes writes (the failover service's answer:
// a standby database, a secondary region, an operator's freeze, a failover in progress).
// Until the first answer it lets writes through; when failover cannot be asked, the last
// answer stays.
type WriteGate struct {
	client failoverv1.FailoverServiceClient
	log    *slog.Logger
	gate   atomic.Pointer[failoverv1.GetWriteGateResponse]
}

// NewWriteGate is a cache over the failover service's GetWriteGate; call Run to follow it.
func NewWriteGate(client failoverv1.FailoverServiceClient, log *slog.Logger) *WriteGate {
	return &WriteGate{client: client, log: log}
}

// Sync asks failover once.
func (g *WriteGate) Sync(ctx context.Context) error {
	res, err := g.client.GetWriteGate(ctx, &failoverv1.GetWriteGateRequest{})
	if err != nil {
		return err
	}
	g.gate.Store(res)
	return nil
}

// Run syncs every interval until ctx ends.
func (g *WriteGate) Run(ctx context.Context, interval time.Duration) {
	follow.Run(ctx, interval, g.log, "the region's write gate", g.Sync)
}

// Middleware refuses writes (any method but GET, HEAD, OPTIONS) with 503 WRITES_FROZEN
// while the region takes none; reads and the failover routes go on.
func (g *WriteGate) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gate := g.gate.Load()
		if gate == nil || gate.GetWritesAllowed() || !writeGated(r.Method, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		writeError(w, r, apierr.New(codes.Unavailable, CodeWritesFrozen, "this region takes no writes now: "+gate.GetReason()+"; reads go on",
			"retry_after_s", "30"))
	})
}

// writeGated reports whether a request is refused while the region takes no writes:
// any method but GET, HEAD and OPTIONS, outside the failover routes.
func writeGated(method, path string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return !strings.HasPrefix(path, failoverRoutes)
}
