package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	ingestv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/ingest/v1"
	runv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/run/v1"
	"github.com/nexusrag/nexusrag/gen/openapi"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/reqstats"
	"github.com/nexusrag/nexusrag/pkg/telemetry"
	"github.com/nexusrag/nexusrag/services/gateway/apidocs"
)

// Backend is a service the gateway fronts: its gRPC service, the connection to the
// process that runs it, and its grpc-gateway routes (nil when it has none). The list
// comes from the binary's module registry.
type Backend struct {
	// Name is the service's name in `nexusrag serve --services` (retrieval, run, ...).
	Name         string
	Desc         *grpc.ServiceDesc
	Conn         *grpc.ClientConn
	RegisterREST func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
}

// backends are the services the edge fronts, in registry order.
type backends []Backend

// conn returns the connection to the service serving desc.
func (bs backends) conn(desc *grpc.ServiceDesc) (*grpc.ClientConn, error) {
	for _, b := range bs {
		if b.Desc.ServiceName == desc.ServiceName {
			return b.Conn, nil
		}
	}
	return nil, fmt.Errorf("no backend serves %s", desc.ServiceName)
}

// Edge is the public HTTP handler.
type Edge struct {
	cfg            Config
	backends       backends
	keys           *KeyCache
	audit          Recorder
	idem           *Idempotency
	limiter        *RateLimiter
	log            *slog.Logger
	routes         *routeTable
	handler        http.Handler
	successSampler *audit.Sampler
	failureSampler *audit.Sampler
	requests       *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	stats          *reqstats.Stats
	policies       *Policies  // nil: no policy rules
	writes         *WriteGate // nil: writes are never refused by region
}

// NewEdge builds the HTTP edge over the services it fronts (backends, each with its
// connection): keys authenticate, limiter (nil: off) and idem guard the protected
// routes, health answers /v1/health, rec records the edge's audit events, stats (nil:
// none) counts request outcomes for the SLO and the ops metrics, policies (nil: none)
// holds the tenants' policy rules.
func NewEdge(ctx context.Context, cfg Config, backends []Backend, keys *KeyCache, limiter *RateLimiter, idem *Idempotency,
	health *Health, stats *reqstats.Stats, policies *Policies, writes *WriteGate, streams *RunStreams, rec Recorder, tel *telemetry.Telemetry, log *slog.Logger) (*Edge, error) {
	e := &Edge{
		cfg: cfg, backends: backends, keys: keys, audit: rec, idem: idem, limiter: limiter, log: log, stats: stats, policies: policies, writes: writes,
		successSampler: audit.NewSampler(cfg.AuditAccessSuccessInterval, 100_000),
		failureSampler: audit.NewSampler(cfg.AuditAccessFailureInterval, 100_000),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nexusrag_http_requests_total", Help: "HTTP requests by method, route template and status.",
		}, []string{"method", "route", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nexusrag_http_request_duration_seconds", Help: "HTTP request latency by method and route template.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"method", "route"}),
	}
	tel.Registry.MustRegister(e.requests, e.latency)

	doc, err := e.document()
	if err != nil {
		return nil, err
	}
	page, err := apidocs.HTML(doc)
	if err != nil {
		return nil, fmt.Errorf("render api docs: %w", err)
	}
	paths, err := apidocs.Paths(doc)
	if err != nil {
		return nil, fmt.Errorf("route table: %w", err)
	}
	infos := make([]routeInfo, 0, len(paths))
	for _, p := range paths {
		infos = append(infos, routeInfo{Method: p.Method, Path: p.Path, Public: p.Public})
	}
	e.routes = newRouteTable(infos)

	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{MarshalOptions: jsonOptions, UnmarshalOptions: protojson.UnmarshalOptions{}}),
		runtime.WithForwardResponseRewriter(wrapMessage),
		runtime.WithForwardResponseOption(acceptedStatus(e.acceptedMethods())),
		runtime.WithErrorHandler(e.grpcError),
		runtime.WithRoutingErrorHandler(e.routingError),
		// Nothing a client sends is forwarded as metadata: the principal and request id are
		// set by the gateway itself (grpcx client interceptors), so a client cannot forge them.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
	)
	for _, b := range e.backends {
		if b.RegisterREST == nil {
			continue
		}
		if err := b.RegisterREST(ctx, mux, b.Conn); err != nil {
			return nil, fmt.Errorf("register %s routes: %w", b.Desc.ServiceName, err)
		}
	}
	native := map[string]http.Handler{
		"/v1/health":       health,
		"/v1/openapi.json": staticHandler("application/json", doc),
		"/v1/docs":         staticHandler("text/html; charset=utf-8", page),
	}
	for path, h := range native {
		if err := mux.HandlePath(http.MethodGet, path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) { h.ServeHTTP(w, r) }); err != nil {
			return nil, fmt.Errorf("register %s: %w", path, err)
		}
	}
	ingestConn, err := e.backends.conn(&ingestv1.IngestService_ServiceDesc)
	if err != nil {
		return nil, err
	}
	if err := mux.HandlePath(http.MethodPost, "/v1/documents", uploadDocument(ingestv1.NewIngestServiceClient(ingestConn))); err != nil {
		return nil, fmt.Errorf("register /v1/documents: %w", err)
	}
	runConn, err := e.backends.conn(&runv1.RunService_ServiceDesc)
	if err != nil {
		return nil, err
	}
	runClient := runv1.NewRunServiceClient(runConn)
	sse := &sseStream{client: runClient, heartbeat: cfg.RunHeartbeatInterval, after: time.After, now: time.Now, stats: stats, streams: streams, log: log}
	if err := mux.HandlePath(http.MethodPost, runRoute, sse.handler()); err != nil {
		return nil, fmt.Errorf("register %s: %w", runRoute, err)
	}
	if err := mux.HandlePath(http.MethodGet, "/v1/audio/{file}", audioFile(runClient)); err != nil {
		return nil, fmt.Errorf("register /v1/audio: %w", err)
	}
	// Tracing is outermost so that the access log and every error carry the trace id;
	// route() names the span once the route is known.
	e.handler = tel.Propagate(e.observe(e.route(mux)))
	if tel.Tracing() {
		e.handler = otelhttp.NewHandler(e.observe(e.route(mux)), "gateway",
			otelhttp.WithTracerProvider(tel.Tracer), otelhttp.WithPropagators(tel.Propagator))
	}
	return e, nil
}

// ServeHTTP serves the public API.
func (e *Edge) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.handler.ServeHTTP(w, r) }

// grpcError is grpc-gateway's error handler: backend and decoding errors become the
// error envelope. Decoding errors carry no NexusRAG code, which tells them apart.
func (e *Edge) grpcError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	if _, ok := apierrOf(err); !ok {
		st := stateOf(ctx)
		switch {
		case st.bodyTooLarge:
			err = tooLarge(st.bodyLimit)
		case isClientDecodeError(err):
			err = apierr.New(codes.InvalidArgument, CodeMalformedRequest, "malformed request: "+decodeMessage(err))
		}
	}
	writeError(w, r, err)
}

// routingError covers what the route table let through but grpc-gateway could not route.
func (e *Edge) routingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	if httpStatus == http.StatusMethodNotAllowed {
		writeError(w, r, apierr.New(codes.Unimplemented, CodeMethodNotAllowed, fmt.Sprintf("%s does not accept %s", r.URL.Path, r.Method)))
		return
	}
	writeError(w, r, apierr.New(codes.NotFound, CodeRouteNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)))
}

func isClientDecodeError(err error) bool {
	e, _ := apierrOf(err)
	return e.GRPCCode == codes.InvalidArgument
}

// decodeMessage shortens protojson's messages ("proto: syntax error (line 1:2): ...").
func decodeMessage(err error) string {
	e, _ := apierrOf(err)
	return strings.TrimPrefix(strings.TrimPrefix(e.Message, "proto: "), "proto:")
}

func staticHandler(contentType string, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	})
}

// describeOperation maps an OpenAPI operation id ("AuthService_WhoAmI") to what the
// contract says of its gRPC method: the least role it needs and whether it answers 202.
func (e *Edge) describeOperation(opID string) apidocs.Operation {
	for _, b := range e.backends {
		short := b.Desc.ServiceName[strings.LastIndex(b.Desc.ServiceName, ".")+1:]
		method, ok := strings.CutPrefix(opID, short+"_")
		if !ok {
			continue
		}
		full := "/" + b.Desc.ServiceName + "/" + method
		acc := grpcx.MethodAccess(full)
		if acc == nil || acc.GetInternal() {
			return apidocs.Operation{}
		}
		return apidocs.Operation{MinRole: principal.RoleName(acc.GetMinRole()), Accepted: isAccepted(full), Events: streamEvents(full)}
	}
	return apidocs.Operation{}
}

// streamEvents lists the Server-Sent Events of a server-streaming method whose response
// is a oneof of kinds named by sse_event options (RunService.Run), from the contract.
func streamEvents(fullMethod string) []apidocs.Event {
	md := methodDescriptor(fullMethod)
	if md == nil || !md.IsStreamingServer() {
		return nil
	}
	var out []apidocs.Event
	output := md.Output()
	for i := 0; i < output.Oneofs().Len(); i++ {
		fields := output.Oneofs().Get(i).Fields()
		for j := 0; j < fields.Len(); j++ {
			fd := fields.Get(j)
			name, _ := proto.GetExtension(fd.Options(), apiv1.E_SseEvent).(string)
			if name == "" || fd.Message() == nil {
				continue
			}
			out = append(out, apidocs.Event{Name: name, Definition: definitionName(fd.Message())})
		}
	}
	return out
}

// Document is the OpenAPI document an edge in front of backends serves at
// /v1/openapi.json; the backends' connections are not used.
func Document(backends []Backend) ([]byte, error) {
	return (&Edge{backends: backends}).document()
}

func (e *Edge) document() ([]byte, error) {
	doc, err := apidocs.Build(openapi.Spec, e.nativeRoutes(), e.describeOperation, apidocs.Limits{
		Counted:    func(path string) bool { return requestCost(ClassRead, path) > 0 },
		WriteGated: writeGated,
	})
	if err != nil {
		return nil, fmt.Errorf("build openapi document: %w", err)
	}
	return doc, nil
}

// definitionName is protoc-gen-openapiv2's name for a message: its package's last part
// and its name (nexusrag.run.v1.TokenDelta is v1TokenDelta).
func definitionName(m protoreflect.MessageDescriptor) string {
	pkg := string(m.ParentFile().Package())
	return pkg[strings.LastIndex(pkg, ".")+1:] + string(m.Name())
}

// methodDescriptor finds a gRPC method ("/pkg.Service/Method") in the registered contracts.
func methodDescriptor(fullMethod string) protoreflect.MethodDescriptor {
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(fullMethod, "/"), "/", "."))
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return nil
	}
	m, _ := d.(protoreflect.MethodDescriptor)
	return m
}

// isAccepted reports whether a gRPC method ("/pkg.Service/Method") starts asynchronous
// work (the contract's accepted option): the gateway answers it 202.
func isAccepted(fullMethod string) bool {
	m := methodDescriptor(fullMethod)
	if m == nil {
		return false
	}
	accepted, _ := proto.GetExtension(m.Options(), apiv1.E_Accepted).(bool)
	return accepted
}

// acceptedMethods are the mapped methods marked accepted in the contracts, looked up once.
func (e *Edge) acceptedMethods() map[string]bool {
	out := map[string]bool{}
	for _, b := range e.backends {
		for _, m := range b.Desc.Methods {
			if full := "/" + b.Desc.ServiceName + "/" + m.MethodName; isAccepted(full) {
				out[full] = true
			}
		}
	}
	return out
}

// acceptedStatus is grpc-gateway's forward-response option: methods marked accepted in
// the contract answer 202 instead of 200.
func acceptedStatus(accepted map[string]bool) func(context.Context, http.ResponseWriter, proto.Message) error {
	return func(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
		if m, ok := runtime.RPCMethod(ctx); ok && accepted[m] {
			w.WriteHeader(http.StatusAccepted)
		}
		return nil
	}
}

// nativeRoutes are the routes served by the gateway itself, described for the docs.
func (e *Edge) nativeRoutes() []apidocs.Route {
	return []apidocs.Route{
		{Method: http.MethodGet, Path: "/v1/health", OperationID: "Operations_Health", Public: true, Tags: []string{"Operations"},
			Summary:              "Health of every service and dependency",
			Description:          "200 with the report when every service and dependency answers; 503 SERVICE_UNAVAILABLE with each component's status in details otherwise.",
			ResponseContentTypes: []string{"application/json"}},
		{Method: http.MethodGet, Path: "/v1/docs", OperationID: "Operations_Docs", Public: true, Tags: []string{"Operations"},
			Summary: "This API documentation as HTML", ResponseContentTypes: []string{"text/html"}},
		{Method: http.MethodGet, Path: "/v1/openapi.json", OperationID: "Operations_OpenAPI", Public: true, Tags: []string{"Operations"},
			Summary: "The OpenAPI 3.0 document of the API", ResponseContentTypes: []string{"application/json"}},
		{Method: http.MethodPost, Path: "/v1/documents", OperationID: "IngestService_UploadDocument", MinRole: e.describeOperation("IngestService_CreateDocument").MinRole, Tags: []string{"IngestService"},
			Summary: "Upload a document as a multipart form and queue its ingestion",
			Description: "multipart/form-data with corpus_id and file (text/plain, text/markdown, text/html, a DOCX, a PDF, or application/json holding {\"text\": ...}; " +
				"without a part Content-Type the file name's extension decides), plus the optional fields of POST /v1/documents/text. " +
				"This path also takes that route's JSON body. The status_url reports queued, processing, succeeded or failed; " +
				"a PDF whose text cannot be extracted fails with a failure_reason (PDF_NO_TEXT, PDF_ENCRYPTED, PDF_CORRUPT, PDF_TOO_MANY_PAGES, PDF_EXTRACT_TIMEOUT, PDF_TEXT_TOO_LARGE).",
			RequestContentTypes: []string{"multipart/form-data"}, // the JSON body is POST /v1/documents/text's, documented there
			RequestSchema: map[string]any{"type": "object", "required": []string{"corpus_id", "file"}, "properties": map[string]any{
				"corpus_id": map[string]any{"type": "string"}, "file": map[string]any{"type": "file"},
				"document_id": map[string]any{"type": "string"}, "filename": map[string]any{"type": "string"},
				"overwrite": map[string]any{"type": "boolean"}, "chunk_size_chars": map[string]any{"type": "integer"},
				"chunk_overlap_chars": map[string]any{"type": "integer"},
			}},
			ResponseSchema: map[string]any{"$ref": "#/definitions/v1CreateDocumentResponse"}, SuccessStatus: "202",
			Responses: map[string]string{
				"400": "INVALID_ARGUMENT (empty text, bad field) or MALFORMED_REQUEST.",
				"404": "NOT_FOUND: the corpus does not exist.",
				"409": "DOCUMENT_EXISTS (send overwrite=true), DOCUMENT_BUSY, DOCUMENT_CORPUS_MISMATCH or CORPUS_NOT_LOCAL.",
				"413": "PAYLOAD_TOO_LARGE: the text (or PDF) is over INGEST_MAX_BYTES.",
				"415": "UNSUPPORTED_MEDIA_TYPE: not a form or JSON, or a file that is not text/plain, text/markdown, text/html, DOCX, PDF or JSON.",
			}},
		{Method: http.MethodGet, Path: "/v1/audio/{audio_id}.mp3", OperationID: "RunService_GetAudio", Public: true, Tags: []string{"RunService"},
			Summary:              "A spoken answer (audio.ready's audio_url); public because its id cannot be guessed",
			ResponseContentTypes: []string{"audio/mpeg"}, Responses: map[string]string{"404": "NOT_FOUND: no such audio."}},
	}
}
