package gateway

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/requestid"
)

// observe is the outermost layer: request id, panic recovery, access log and metrics.
func (e *Edge) observe(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		st := &reqState{requestID: requestid.Accept(r.Header.Get(requestid.Header)), route: "unmatched"}
		ctx := requestid.With(withState(r.Context(), st), st.requestID)
		r = r.WithContext(ctx)
		w.Header().Set(requestid.Header, st.requestID)
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				e.log.ErrorContext(r.Context(), "panic in http handler", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !sw.wrote {
					writeError(sw, r, apierr.New(codes.Internal, apierr.CodeInternal, "internal error"))
				}
			}
			elapsed := time.Since(start)
			code := strconv.Itoa(sw.status)
			e.requests.WithLabelValues(r.Method, st.route, code).Inc()
			e.latency.WithLabelValues(r.Method, st.route).Observe(elapsed.Seconds())
			if e.stats != nil && st.tenant != "" { // authenticated API requests: what the SLO is about
				e.stats.Observe(elapsed, sw.status >= 500, "class:"+routeClass(r.Method, st.route), "slo:"+sloGroup(r.Method, st.route))
			}
			attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("route", st.route),
				slog.Int("status", sw.status), slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
				slog.Bool("legacy", st.legacy)}
			if st.tenant != "" {
				attrs = append(attrs, slog.String("tenant_id", st.tenant))
			}
			e.log.LogAttrs(r.Context(), slog.LevelInfo, "http request", attrs...)
		}()
		next.ServeHTTP(sw, r)
	})
}

// route resolves the request against the route table: unknown paths answer 404, known
// paths with another method 405, and unversioned legacy paths are served as their /v1
// route (with deprecation headers) or refused with 410 once switched off. Public routes
// go straight to next; the others through body limit, authentication and idempotency,
// a chain built once here rather than per request.
func (e *Edge) route(next http.Handler) http.Handler {
	inner := e.idem.Middleware(next)
	if e.limiter != nil {
		inner = e.limiter.Middleware(inner)
	}
	if e.writes != nil {
		inner = e.writes.Middleware(inner)
	}
	if e.policies != nil {
		inner = e.policies.Middleware(e.audit, e.failureSampler, inner)
	}
	protected := e.limitBody(e.authenticate(inner))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		path := r.URL.Path
		if !strings.HasPrefix(path, "/v1/") {
			v1 := "/v1" + path
			if rt, allowed := e.routes.match(r.Method, v1); rt != nil || len(allowed) > 0 {
				st.legacy = true
				if !e.cfg.LegacyRoutesEnabled {
					w.Header().Set("Link", successorLink)
					writeError(w, r, apierr.New(codes.FailedPrecondition, CodeEndpointSunset,
						fmt.Sprintf("%s was sunset on %s; use %s", path, sunsetDate, v1), "successor", v1))
					return
				}
				h := w.Header()
				h.Set("Deprecation", "true")
				h.Set("Sunset", sunsetDate)
				h.Set("Link", successorLink)
				r.URL.Path, r.URL.RawPath = v1, ""
				path = v1
			}
		}
		rt, allowed := e.routes.match(r.Method, path)
		if rt == nil {
			if len(allowed) > 0 {
				w.Header().Set("Allow", strings.Join(allowed, ", "))
				writeError(w, r, apierr.New(codes.Unimplemented, CodeMethodNotAllowed,
					fmt.Sprintf("%s does not accept %s", r.URL.Path, r.Method), "allowed", strings.Join(allowed, ", ")))
				return
			}
			writeError(w, r, apierr.New(codes.NotFound, CodeRouteNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)))
			return
		}
		st.route = rt.template
		st.bodyLimit = e.bodyLimit(r.Method, rt.template)
		span := trace.SpanFromContext(r.Context())
		span.SetName(r.Method + " " + rt.template)
		span.SetAttributes(semconv.HTTPRoute(rt.template))
		if rt.public {
			next.ServeHTTP(w, r)
			return
		}
		protected.ServeHTTP(w, r)
	})
}

// bodyLimit is a route's request body limit: document uploads carry up to
// INGEST_MAX_BYTES of text or of a PDF (base64 in JSON: 4/3 as many bytes) plus framing,
// everything else HTTP_MAX_BODY_BYTES.
func (e *Edge) bodyLimit(method, template string) int64 {
	if method == http.MethodPost && (template == "/v1/documents" || template == "/v1/documents/text") {
		return e.cfg.IngestMaxBytes/3*4 + 1<<20
	}
	return e.cfg.MaxBodyBytes
}

// limitBody refuses bodies over the route's limit: at once when Content-Length says so,
// and while reading otherwise (the state flag lets the error handler answer 413).
func (e *Edge) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := stateOf(r.Context())
		if r.ContentLength > st.bodyLimit {
			writeError(w, r, tooLarge(st.bodyLimit))
			return
		}
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, st.bodyLimit), st: st}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(limit int64) error {
	return apierr.New(codes.InvalidArgument, CodePayloadTooLarge,
		fmt.Sprintf("request body exceeds %d bytes", limit), "limit_bytes", strconv.FormatInt(limit, 10))
}

// bodyReadError turns a failed body read into the error the client should see.
func bodyReadError(r *http.Request, err error) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(mbe.Limit)
	}
	return apierr.New(codes.InvalidArgument, CodeMalformedRequest, "could not read the request body")
}

type limitedBody struct {
	io.ReadCloser
	st *reqState
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.st.bodyTooLarge = true
	}
	return n, err
}

// authenticate resolves the caller from the bearer key (or, with AUTH_DEV_BYPASS, from
// X-Tenant-Id / X-Role), puts the principal in the context and audits the outcome.
func (e *Edge) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := e.principalOf(r)
		if err != nil {
			e.auditAuthFailure(r, p, err)
			writeError(w, r, err)
			return
		}
		stateOf(r.Context()).tenant = p.TenantID
		ctx := principal.With(r.Context(), p)
		e.auditAuthSuccess(r.WithContext(ctx), p)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (e *Edge) principalOf(r *http.Request) (principal.Principal, error) {
	authz := r.Header.Get("Authorization")
	if e.cfg.AuthDevBypass && authz == "" {
		if tenant := r.Header.Get("X-Tenant-Id"); tenant != "" {
			return devPrincipal(tenant, r.Header.Get("X-Role"))
		}
	}
	if authz == "" {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, CodeAuthMissing, "missing Authorization: Bearer <api key> header")
	}
	scheme, key, ok := strings.Cut(authz, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(key) == "" {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, CodeAuthInvalid, "the Authorization header must be: Bearer <api key>")
	}
	return e.keys.Authenticate(r.Context(), strings.TrimSpace(key))
}

func devPrincipal(tenant, role string) (principal.Principal, error) {
	if !ValidTenantID(tenant) {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, CodeAuthInvalid, "X-Tenant-Id is not a valid tenant id")
	}
	if role == "" {
		role = "admin"
	}
	rl, err := principal.ParseRole(role)
	if err != nil {
		return principal.Principal{}, apierr.New(codes.Unauthenticated, CodeAuthInvalid, "X-Role must be reader, editor or admin")
	}
	return principal.Principal{TenantID: tenant, Role: rl}, nil
}

func (e *Edge) auditAuthSuccess(r *http.Request, p principal.Principal) {
	if p.KeyID == "" {
		return // dev bypass: there is no key to account for
	}
	ok, suppressed := e.successSampler.Allow(p.KeyID, time.Now())
	if !ok {
		return
	}
	e.audit.Record(r.Context(), audit.Event{
		Type: audit.TypeAuthAccessSuccess, Outcome: audit.OutcomeSuccess, TenantID: p.TenantID,
		ActorType: audit.ActorAPIKey, ActorID: p.KeyID, ClientIP: clientIP(r),
		Metadata: map[string]any{"method": r.Method, "route": stateOf(r.Context()).route, "suppressed_since_last": suppressed},
	})
}

// auditAuthFailure records a failed authentication; p is set only for a revoked key,
// so that its tenant's admins see the attempt.
func (e *Edge) auditAuthFailure(r *http.Request, p principal.Principal, err error) {
	_, ae := httpError(err)
	ip := clientIP(r)
	ok, suppressed := e.failureSampler.Allow(ip+"|"+ae.Code, time.Now())
	if !ok {
		return
	}
	ev := audit.Event{
		Type: audit.TypeAuthAccessFailure, Outcome: audit.OutcomeFailure, ActorType: audit.ActorAnonymous, ClientIP: ip,
		Metadata: map[string]any{"reason": ae.Code, "method": r.Method, "route": stateOf(r.Context()).route, "suppressed_since_last": suppressed},
	}
	if p.KeyID != "" {
		ev.TenantID, ev.ActorType, ev.ActorID = p.TenantID, audit.ActorAPIKey, p.KeyID
	}
	e.audit.Record(r.Context(), ev)
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// statusWriter remembers the status for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusWriter) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(p)
}

func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// sloGroup is the latency objective a request is held to: run, documents_text or api.
func sloGroup(method, route string) string {
	switch {
	case route == runRoute:
		return "run"
	case method == http.MethodPost && route == "/v1/documents/text":
		return "documents_text"
	}
	return "api"
}
