// Package grpcx builds NexusRAG's gRPC servers and clients with the interceptors every
// service shares: request context (request id, principal), authorization from the
// contracts' access option, error normalization, logging, metrics and tracing. A new
// RPC needs a proto change and a handler, nothing here.
package grpcx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/requestid"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
)

// ServerOptions configure NewServer.
type ServerOptions struct {
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	// Keys verifies the service tokens of calls. Nil gives the server an ephemeral
	// keyring: then only InProcess clients can call it.
	Keys *svcauth.Keyring
	// APIKeys authenticates operators' API keys; nil refuses them.
	APIKeys KeyAuthenticator
	// OnForbidden, when set, is called for every call refused for a too-low role.
	OnForbidden ForbiddenFunc
}

// MaxMessageBytes bounds every message between NexusRAG services, above gRPC's 4 MiB
// default: a document (INGEST_MAX_BYTES) or a batch of its chunks travels in one message.
const MaxMessageBytes = 64 << 20

// Server serves a process's gRPC services twice over, with one interceptor chain: to
// other processes and operators on network listeners (health and reflection included),
// and to the process's own services on an in-memory listener. Two servers let shutdown
// drain outside callers first while the process's services still reach each other (the
// audit flush goes through governance). Every call but health's must carry credentials
// (auth.go).
type Server struct {
	// Health reports every registered service SERVING until StopExternal.
	Health *health.Server
	ext    *grpc.Server
	mem    *grpc.Server
	log    *slog.Logger
	keys   *svcauth.Keyring
	authz  *authorizer
}

// NewServer builds a server with the shared interceptor chain.
func NewServer(o ServerOptions) *Server {
	log := o.Log
	if o.Keys == nil {
		o.Keys = svcauth.Ephemeral()
	}
	authz := &authorizer{onForbidden: o.OnForbidden}
	ic := &interceptors{log: log, keys: o.Keys, apiKeys: o.APIKeys, authz: authz}
	if o.Telemetry != nil {
		ic.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "nexusrag_grpc_server_handling_seconds",
			Help:    "Latency of gRPC calls handled, by method and code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "code"})
		o.Telemetry.Registry.MustRegister(ic.latency)
	}
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		grpc.ChainUnaryInterceptor(ic.unary),
		grpc.ChainStreamInterceptor(ic.stream),
	}
	switch tel := o.Telemetry; {
	case tel != nil && tel.Tracing():
		opts = append(opts, grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tel.Tracer), otelgrpc.WithPropagators(tel.Propagator))))
	case tel != nil: // no spans: carry the trace context only
		ic.propagator = tel.Propagator
	}
	s := &Server{ext: grpc.NewServer(opts...), mem: grpc.NewServer(opts...), Health: health.NewServer(), log: log, keys: o.Keys, authz: authz}
	healthpb.RegisterHealthServer(s.ext, s.Health)
	healthpb.RegisterHealthServer(s.mem, s.Health)
	reflection.Register(s.ext)
	return s
}

// SetEntitlements has the server check the feature of each method's access option
// against the caller's tenant's plan (FEATURE_NOT_ENABLED). It is set once, before the
// server serves; a server without it leaves features unchecked (a process with no
// feature-gated method, and tests of one service).
func (s *Server) SetEntitlements(c Entitlements) { s.authz.entitlements = c }

// Register adds a service implementation and marks it SERVING in the health service.
func (s *Server) Register(desc *grpc.ServiceDesc, impl any) {
	s.ext.RegisterService(desc, impl)
	s.mem.RegisterService(desc, impl)
	s.Health.SetServingStatus(desc.ServiceName, healthpb.HealthCheckResponse_SERVING)
}

// Serve serves other processes on lis until StopExternal; it returns nil after a stop.
func (s *Server) Serve(lis net.Listener) error { return serve(s.ext, lis) }

// ServeMem serves the process's own services on lis until Stop.
func (s *Server) ServeMem(lis *MemListener) error { return serve(s.mem, lis) }

func serve(srv *grpc.Server, lis net.Listener) error {
	if err := srv.Serve(lis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpc serve on %s: %w", lis.Addr(), err)
	}
	return nil
}

// StopExternal marks every service NOT_SERVING (readiness probes fail), stops accepting
// calls from other processes, and lets theirs finish until ctx ends.
func (s *Server) StopExternal(ctx context.Context) {
	s.Health.Shutdown()
	s.gracefulStop(ctx, s.ext, "external")
}

// Stop stops both servers, letting in-flight calls finish until ctx ends.
func (s *Server) Stop(ctx context.Context) {
	s.StopExternal(ctx)
	s.gracefulStop(ctx, s.mem, "in-memory")
}

// Close stops both servers at once.
func (s *Server) Close() {
	s.ext.Stop()
	s.mem.Stop()
}

func (s *Server) gracefulStop(ctx context.Context, srv *grpc.Server, which string) {
	done := make(chan struct{})
	go func() { srv.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("grpc graceful stop timed out; closing remaining calls", "server", which)
		srv.Stop()
		<-done
	}
}

type interceptors struct {
	// propagator, when set, takes the caller's trace context from the metadata (when
	// tracing is on, otelgrpc does that and more).
	propagator propagation.TextMapPropagator
	log        *slog.Logger
	keys       *svcauth.Keyring
	apiKeys    KeyAuthenticator
	authz      *authorizer
	latency    *prometheus.HistogramVec
}

// prepare authenticates the call, builds its context (request id, principal) and
// authorizes it. Health alone answers without credentials.
func (ic *interceptors) prepare(ctx context.Context, method string) (context.Context, error) {
	if ic.propagator != nil {
		ctx = extractTrace(ctx, ic.propagator)
	}
	if isHealth(method) {
		return requestid.FromIncoming(ctx), nil
	}
	ctx, caller, err := ic.authenticate(ctx, method)
	if err != nil {
		return ctx, err
	}
	return ctx, ic.authz.authorize(ctx, method, caller)
}

func (ic *interceptors) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	start := time.Now()
	ctx, err = ic.prepare(ctx, info.FullMethod)
	defer func() {
		if r := recover(); r != nil {
			err = ic.panicked(ctx, info.FullMethod, r)
		}
		err = ic.finish(ctx, info.FullMethod, start, err)
	}()
	if err != nil {
		return nil, err
	}
	if err := checkText(req); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (ic *interceptors) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	start := time.Now()
	ctx, err := ic.prepare(ss.Context(), info.FullMethod)
	defer func() {
		if r := recover(); r != nil {
			err = ic.panicked(ctx, info.FullMethod, r)
		}
		err = ic.finish(ctx, info.FullMethod, start, err)
	}()
	if err != nil {
		return err
	}
	return handler(srv, &contextStream{ServerStream: ss, ctx: ctx, check: !isInfrastructure(info.FullMethod)})
}

func (ic *interceptors) panicked(ctx context.Context, method string, r any) error {
	ic.log.ErrorContext(ctx, "panic in grpc handler", "method", method, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return apierr.New(codes.Internal, apierr.CodeInternal, "internal error")
}

// finish normalizes the error so that every failure carries a stable code, then logs and
// measures the call. Unexpected errors are logged in full and returned without their text.
func (ic *interceptors) finish(ctx context.Context, method string, start time.Time, err error) error {
	cause := err
	if !isInfrastructure(method) { // health and reflection keep their own codes (NotFound for an unknown service)
		err = Normalize(ctx, err)
	}
	code := status.Code(err)
	if code == codes.Internal && cause != nil && cause != err {
		ic.log.ErrorContext(ctx, "internal error", "method", method, "error", cause.Error())
	}
	elapsed := time.Since(start)
	if ic.latency != nil {
		ic.latency.WithLabelValues(method, code.String()).Observe(elapsed.Seconds())
	}
	lvl := slog.LevelDebug
	if code == codes.Internal || code == codes.Unknown || code == codes.DataLoss {
		lvl = slog.LevelError
	}
	ic.log.Log(ctx, lvl, "grpc call", "method", method, "code", code.String(), "duration_ms", float64(elapsed.Microseconds())/1000)
	return err
}

// Normalize maps any error a handler returns to a status with a NexusRAG code:
// domain errors pass, context errors become CANCELED / DEADLINE_EXCEEDED, anything else
// is logged by the caller and becomes INTERNAL without its text.
func Normalize(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var de *apierr.Error
	if errors.As(err, &de) {
		return de
	}
	switch {
	case errors.Is(err, context.Canceled):
		return apierr.New(codes.Canceled, apierr.CodeCanceled, "the request was canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return apierr.New(codes.DeadlineExceeded, apierr.CodeDeadline, "the request took too long")
	}
	if dependencyDown(err) {
		return apierr.New(codes.Unavailable, CodeDependencyUnavailable, "a database or cache is unavailable; retry shortly")
	}
	if st, ok := status.FromError(err); ok {
		if _, hasInfo := apierr.FromStatus(st); hasInfo {
			return err // a domain error from a downstream service, passed on as it is
		}
		switch st.Code() {
		case codes.Unavailable:
			return apierr.New(codes.Unavailable, apierr.CodeUnavailable, "a backend service is unavailable")
		case codes.Canceled:
			return apierr.New(codes.Canceled, apierr.CodeCanceled, "the request was canceled")
		case codes.DeadlineExceeded:
			return apierr.New(codes.DeadlineExceeded, apierr.CodeDeadline, "the request took too long")
		}
	}
	return apierr.New(codes.Internal, apierr.CodeInternal, "internal error")
}

// CodeDependencyUnavailable is answered while Postgres or Redis cannot be reached; the
// pools reconnect on their own, so the same request succeeds once they are back.
const CodeDependencyUnavailable = "DEPENDENCY_UNAVAILABLE"

// dependencyDown recognizes lost or refused connections to Postgres or Redis, as opposed
// to errors of the query itself.
func dependencyDown(err error) bool {
	var connectErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr), errors.As(err, &netErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF),
		errors.Is(err, net.ErrClosed), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return true
	case errors.As(err, &pgErr):
		// Class 08: connection exception; 57P01-57P03: the server is shutting the session down.
		return strings.HasPrefix(pgErr.Code, "08") || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03"
	}
	// pgx reports a connection it already knows to be dead this way.
	return strings.Contains(err.Error(), "conn closed") || pgconn.SafeToRetry(err)
}

// contextStream is a server stream with the call's context; it checks the strings of
// what it receives, as the unary interceptor checks a request.
type contextStream struct {
	grpc.ServerStream
	ctx   context.Context
	check bool
}

func (s *contextStream) Context() context.Context { return s.ctx }

func (s *contextStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if s.check {
		return checkText(m)
	}
	return nil
}
