package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/svcauth"
)

// serviceConn dials addr as a NexusRAG service does: every call carries a service token
// signed with the platform's keys.
func serviceConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	_, tokens := serviceKeys(t)
	return dialWith(t, addr, tokens)
}

// bareConn dials addr without credentials: what grpcurl does without -H.
func bareConn(t *testing.T, addr string) *grpc.ClientConn { return dialWith(t, addr, nil) }

func dialWith(t *testing.T, addr string, tokens *svcauth.Issuer) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcx.Dial(addr, grpcx.ClientOptions{Tokens: tokens})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// withKey is grpcurl's -H "authorization: Bearer <key>".
func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// listServices asks reflection for the services served at conn.
func listServices(ctx context.Context, conn *grpc.ClientConn) ([]string, error) {
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return nil, err
	}
	_ = stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}) // EOF when refused: Recv says why
	res, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	sort.Strings(names)
	return names, nil
}

// TestGRPCReflectionAndHealth is what `grpcurl` relies on: health for anyone, reflection
// for any valid credential.
func TestGRPCReflectionAndHealth(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, reader := p.createKey("t1", "reader")
	conn := bareConn(t, p.GRPC)
	ctx := context.Background()

	_, err := listServices(ctx, conn)
	require.Equal(t, codes.Unauthenticated, status.Code(err), "reflection needs a credential")
	names, err := listServices(withKey(ctx, reader), conn)
	require.NoError(t, err)
	require.Equal(t, []string{
		"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
		"nexusrag.billing.v1.BillingService", "nexusrag.failover.v1.FailoverService", "nexusrag.gateway.v1.AuthService", "nexusrag.governance.v1.AuditService",
		"nexusrag.governance.v1.DsarService", "nexusrag.governance.v1.GovernanceReportService", "nexusrag.governance.v1.LegalHoldService", "nexusrag.governance.v1.PolicyService",
		"nexusrag.governance.v1.RetentionService", "nexusrag.ingest.v1.IngestService", "nexusrag.ops.v1.OpsService", "nexusrag.retrieval.v1.RetrievalService", "nexusrag.run.v1.RunService", "nexusrag.ui.v1.UIService",
	}, names)

	for _, svc := range []string{"", "nexusrag.gateway.v1.AuthService", "nexusrag.governance.v1.AuditService", "nexusrag.ingest.v1.IngestService", "nexusrag.ops.v1.OpsService", "nexusrag.retrieval.v1.RetrievalService", "nexusrag.run.v1.RunService"} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err, "health answers without credentials")
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus(), svc)
	}
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "nexusrag.search.v1.Nope"})
	require.Equal(t, codes.NotFound, status.Code(err), "an unknown service is NotFound")
	require.NotContains(t, p.logs.String(), `"level":"ERROR"`)
}

// grpcOutcome is what a call answered: the gRPC code and the NexusRAG code.
type grpcOutcome struct {
	code    codes.Code
	apiCode string
	reply   proto.Message
}

// invoke calls any method with a dynamic request, unary or server-streaming (first message).
func invoke(ctx context.Context, conn *grpc.ClientConn, md protoreflect.MethodDescriptor, req proto.Message) grpcOutcome {
	full := fmt.Sprintf("/%s/%s", md.Parent().FullName(), md.Name())
	reply := dynamicpb.NewMessage(md.Output())
	var err error
	if md.IsStreamingServer() {
		var stream grpc.ClientStream
		stream, err = conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, full)
		if err == nil {
			if err = stream.SendMsg(req); err == nil || errors.Is(err, io.EOF) {
				_ = stream.CloseSend()
				err = stream.RecvMsg(reply)
			}
		}
	} else {
		err = conn.Invoke(ctx, full, req, reply)
	}
	out := grpcOutcome{code: status.Code(err), reply: reply}
	if e, ok := apierr.From(err); ok {
		out.apiCode = e.Code
	}
	return out
}

// restRoutes maps "Service_Method" to the REST route of the served OpenAPI document
// (grpc-gateway routes carry their method as operationId); POST /v1/run is the
// gateway's own SSE route over RunService.Run.
func restRoutes(t *testing.T, p *platform) map[string][2]string {
	t.Helper()
	doc := p.do(http.MethodGet, "/v1/openapi.json", "", "")
	require.Equal(t, http.StatusOK, doc.Status)
	out := map[string][2]string{"RunService_Run": {http.MethodPost, "/v1/run"}}
	for path, ops := range doc.JSON["paths"].(map[string]any) {
		for method, op := range ops.(map[string]any) {
			if id, _ := op.(map[string]any)["operationId"].(string); id != "" {
				out[id] = [2]string{strings.ToUpper(method), path}
			}
		}
	}
	return out
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// httpOfGRPC is the gateway's table (services/gateway/errors.go) for the codes these
// empty requests produce.
var httpOfGRPC = map[codes.Code]int{
	codes.OK: http.StatusOK, codes.InvalidArgument: http.StatusBadRequest, codes.NotFound: http.StatusNotFound,
	codes.FailedPrecondition: http.StatusConflict, codes.PermissionDenied: http.StatusForbidden, codes.Unauthenticated: http.StatusUnauthorized,
}

// TestGRPCEveryMethodProvesItsCaller walks every method that reflection lists, on every
// service: no credential and forged principal metadata are Unauthenticated, a reader
// key on an admin method and any API key on an internal method are PermissionDenied,
// and an admin key gets the same answer as through REST.
func TestGRPCEveryMethodProvesItsCaller(t *testing.T) {
	t.Parallel()
	// t1's admin is a platform admin: the platform's methods answer it as such.
	p := startPlatform(t, []string{"PLATFORM_ADMIN_TENANTS=t1"})
	_, admin := p.createKey("t1", "admin")
	_, reader := p.createKey("t1", "reader")
	require.Equal(t, http.StatusOK, p.do(http.MethodPatch, "/v1/corpora/c1", admin, `{"allow_missing":true}`).Status)
	conn := bareConn(t, p.GRPC)
	ctx := context.Background()
	services, err := listServices(withKey(ctx, admin), conn)
	require.NoError(t, err)
	routes := restRoutes(t, p)
	forged := metadata.AppendToOutgoingContext(ctx, "x-nexusrag-tenant-id", "someone-else", "x-nexusrag-role", "admin", "x-nexusrag-key-id", "k1")

	var report []string
	methods := 0
	for _, svc := range services {
		if strings.HasPrefix(svc, "grpc.health.") {
			continue // anonymous by design (TestGRPCReflectionAndHealth)
		}
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(svc))
		require.NoError(t, err, svc)
		sd := d.(protoreflect.ServiceDescriptor)
		for i := 0; i < sd.Methods().Len(); i++ {
			md := sd.Methods().Get(i)
			full := fmt.Sprintf("/%s/%s", svc, md.Name())
			methods++
			t.Run(full, func(t *testing.T) {
				req := dynamicpb.NewMessage(md.Input())
				var refused []string
				expect := func(name string, ctx context.Context, want codes.Code) {
					got := invoke(ctx, conn, md, req)
					require.Equal(t, want, got.code, "%s: %s", name, got.apiCode)
					refused = append(refused, fmt.Sprintf("%s→%s", name, got.code))
				}
				expect("none", ctx, codes.Unauthenticated)
				expect("forged", forged, codes.Unauthenticated)
				if strings.HasPrefix(svc, "grpc.reflection.") {
					got := invoke(withKey(ctx, reader), conn, md, req) // an empty request: past authentication, refused as such
					require.Equal(t, codes.InvalidArgument, got.code)
					report = append(report, full+": "+strings.Join(refused, ", ")+", reader key→"+got.code.String())
					return
				}
				acc := grpcx.MethodAccess(full)
				require.NotNil(t, acc, "every method declares its access")
				if acc.GetInternal() {
					expect("admin key", withKey(ctx, admin), codes.PermissionDenied)
					report = append(report, full+" (internal): "+strings.Join(refused, ", "))
					return
				}
				if acc.GetMinRole().String() == "ROLE_ADMIN" {
					expect("reader key", withKey(ctx, reader), codes.PermissionDenied)
				}
				// Path parameters get a value that names nothing, in both calls, but for a
				// tenant_id: the caller's own (another tenant's is FORBIDDEN, tested apart).
				route, hasREST := routes[string(sd.Name())+"_"+string(md.Name())]
				path := pathParam.ReplaceAllStringFunc(route[1], func(m string) string {
					value := "nope"
					if m == "{tenant_id}" {
						value = "t1"
					}
					fd := md.Input().Fields().ByName(protoreflect.Name(m[1 : len(m)-1]))
					if fd.Kind() == protoreflect.Int64Kind { // an id: one that names nothing
						req.Set(fd, protoreflect.ValueOfInt64(987654321))
						return "987654321"
					}
					req.Set(fd, protoreflect.ValueOfString(value))
					return value
				})
				got := invoke(withKey(ctx, admin), conn, md, req)
				require.NotContains(t, []codes.Code{codes.Unauthenticated, codes.PermissionDenied, codes.Internal, codes.Unknown}, got.code, "admin key: %s", got.apiCode)
				line := full + ": " + strings.Join(refused, ", ") + ", admin key→" + got.code.String()
				if hasREST {
					body := ""
					if route[0] == http.MethodPost || route[0] == http.MethodPatch {
						body = "{}"
					}
					rest := p.do(route[0], path, admin, body)
					restStatus := rest.Status
					if restStatus == http.StatusAccepted {
						restStatus = http.StatusOK // the gateway answers asynchronous methods 202
					}
					require.Equal(t, httpOfGRPC[got.code], restStatus, "%s %s: %s", route[0], path, rest.Body)
					if got.code != codes.OK {
						require.Equal(t, got.apiCode, rest.errorCode(), "same error code through REST")
					} else if !volatile[full] {
						var want map[string]any
						b, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(got.reply)
						require.NoError(t, err)
						require.NoError(t, json.Unmarshal(b, &want))
						require.Equal(t, want, rest.data(), "same data through REST")
					}
					line += fmt.Sprintf(" = REST %s %s→%d", route[0], route[1], rest.Status)
				}
				report = append(report, line)
			})
		}
	}
	require.GreaterOrEqual(t, methods, 20)
	sort.Strings(report)
	t.Logf("every method, and what it answered:\n%s", strings.Join(report, "\n"))
}

// volatile methods answer OK with data that moves between two calls (new audit events).
var volatile = map[string]bool{"/nexusrag.governance.v1.AuditService/ListAuditEvents": true,
	// Latencies, ages and counts measured at each call.
	"/nexusrag.ops.v1.OpsService/GetOpsHealth": true, "/nexusrag.ops.v1.OpsService/GetOpsMetrics": true, "/nexusrag.ops.v1.OpsService/GetSlo": true,
	// The REST call itself counts against the quota the summary reports.
	"/nexusrag.ui.v1.UIService/GetDashboardSummary": true,
	// Stamped with the time of each call; a run started by the first call is answered to the
	// second, and carried out between the two reports of it.
	"/nexusrag.governance.v1.GovernanceReportService/GetGovernanceStatus": true, "/nexusrag.governance.v1.GovernanceReportService/GetGovernanceEvidence": true,
	"/nexusrag.governance.v1.RetentionService/StartRetentionRun": true, "/nexusrag.governance.v1.RetentionService/GetRetentionReport": true, "/nexusrag.failover.v1.FailoverService/GetDrReadiness": true,
	// The activity list grows with the audit events of this test's own refused calls.
	"/nexusrag.ui.v1.UIService/ListActivity": true,
	// Unfreezing stamps the region's row with the time of each call.
	"/nexusrag.failover.v1.FailoverService/UpdateWriteFreeze": true}

// TestServiceTokensOverTheWire: the running binary refuses expired tokens, tokens for
// another service and tokens signed with other keys, and accepts a good one.
func TestServiceTokensOverTheWire(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, nil)
	_, tokens := serviceKeys(t)
	now := time.Now()
	sign := func(keys *svcauth.Keyring, aud string, iat, exp time.Time) string {
		tok, err := keys.Sign(svcauth.Claims{Issuer: "e2e-test", Audience: aud, IssuedAt: iat, ExpiresAt: exp})
		require.NoError(t, err)
		return tok
	}
	record := func(token string) error {
		_, err := governancev1.NewAuditServiceClient(bareConn(t, p.GRPC)).RecordEvents(withKey(context.Background(), token), &governancev1.RecordEventsRequest{})
		return err
	}
	tests := []struct {
		name  string
		token string
		want  codes.Code
	}{
		{"valid", sign(tokens.Keys(), "governance", now, now.Add(time.Minute)), codes.OK},
		{"expired", sign(tokens.Keys(), "governance", now.Add(-2*time.Minute), now.Add(-time.Minute)), codes.Unauthenticated},
		{"for another service", sign(tokens.Keys(), "retrieval", now, now.Add(time.Minute)), codes.Unauthenticated},
		{"signed with another key", sign(svcauth.Ephemeral(), "governance", now, now.Add(time.Minute)), codes.Unauthenticated},
		{"lifetime beyond the maximum", sign(tokens.Keys(), "governance", now, now.Add(time.Hour)), codes.Unauthenticated},
	}
	for _, tt := range tests {
		err := record(tt.token)
		require.Equal(t, tt.want, status.Code(err), "%s: %v", tt.name, err)
		if tt.want != codes.OK {
			e, _ := apierr.From(err)
			require.Equal(t, apierr.CodeServiceTokenInvalid, e.Code, tt.name)
		}
	}
}

// recordThroughGRPC records one event the way another service does.
func recordThroughGRPC(t *testing.T, addr string, metadata map[string]any) {
	t.Helper()
	md, err := structpb.NewStruct(metadata)
	require.NoError(t, err)
	res, err := governancev1.NewAuditServiceClient(serviceConn(t, addr)).RecordEvents(context.Background(), &governancev1.RecordEventsRequest{
		Events: []*governancev1.AuditEvent{{
			Id: uuid.Must(uuid.NewV7()).String(), OccurredAt: timestamppb.Now(), TenantId: "t1", ActorType: "system", ActorId: "e2e",
			EventType: "run.invoked", Outcome: "success", Metadata: md,
		}},
	})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.GetRecorded())
}

// upsertThroughGRPC indexes chunks the way the ingest worker does.
func upsertThroughGRPC(t *testing.T, addr, tenant, corpus, document string, texts ...string) {
	t.Helper()
	req := &retrievalv1.UpsertChunksRequest{TenantId: tenant, CorpusId: corpus, DocumentId: document}
	for _, tx := range texts {
		req.Chunks = append(req.Chunks, &retrievalv1.ChunkInput{Text: tx})
	}
	_, err := retrievalv1.NewRetrievalServiceClient(serviceConn(t, addr)).UpsertChunks(context.Background(), req)
	require.NoError(t, err)
}
