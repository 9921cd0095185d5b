// Package telemetry sets up tracing (OpenTelemetry, exporter chosen by the standard
// OTEL_* variables, none by default) and the process's Prometheus registry.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Telemetry is what instrumented code needs; pass it to constructors.
type Telemetry struct {
	Tracer     trace.TracerProvider
	Propagator propagation.TextMapPropagator
	Registry   *prometheus.Registry
	shutdown   func(context.Context) error
	tracing    bool
}

// Tracing reports whether spans are exported. Without an exporter, instrumentation only
// needs to carry the trace context from caller to callee (for the logs' trace_id and for
// the services beyond), which is far cheaper than making spans nobody reads.
func (t *Telemetry) Tracing() bool { return t.tracing }

// Setup builds tracing and metrics for a process. Traces are exported only when
// OTEL_TRACES_EXPORTER names an exporter (otlp, console); unset or "none" exports nothing,
// but trace context still propagates so that an upstream trace is continued.
func Setup(ctx context.Context, serviceName string) (*Telemetry, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	t := &Telemetry{
		Tracer:     noop.NewTracerProvider(),
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Registry:   reg,
		shutdown:   func(context.Context) error { return nil },
	}
	if v := os.Getenv("OTEL_TRACES_EXPORTER"); v == "" || v == "none" {
		return t, nil
	}
	exp, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("OTEL_TRACES_EXPORTER: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(serviceName)))
	if err != nil && !errors.Is(err, resource.ErrSchemaURLConflict) {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	t.Tracer = tp
	t.shutdown = tp.Shutdown
	t.tracing = true
	return t, nil
}

// Shutdown flushes pending spans.
func (t *Telemetry) Shutdown(ctx context.Context) error { return t.shutdown(ctx) }

// Propagate is the HTTP middleware of a process that exports no spans: it only takes the
// trace context of the request (traceparent) into its context.
func (t *Telemetry) Propagate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(t.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))))
	})
}
