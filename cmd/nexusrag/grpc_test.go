package main_test

import (
	"context"
	"sort"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	governancev1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/governance/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
)

// TestGRPCReflectionAndHealth is what `grpcurl -plaintext <addr> list` relies on.
func TestGRPCReflectionAndHealth(t *testing.T) {
	p := startPlatform(t, nil)
	conn, err := grpcx.Dial(p.GRPC, nil)
	require.NoError(t, err)
	defer conn.Close()
	ctx := context.Background()

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}))
	res, err := stream.Recv()
	require.NoError(t, err)
	var names []string
	for _, s := range res.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	sort.Strings(names)
	require.Equal(t, []string{
		"grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
		"nexusrag.gateway.v1.AuthService", "nexusrag.governance.v1.AuditService", "nexusrag.ingest.v1.IngestService",
		"nexusrag.retrieval.v1.RetrievalService", "nexusrag.run.v1.RunService",
	}, names)

	for _, svc := range []string{"", "nexusrag.gateway.v1.AuthService", "nexusrag.governance.v1.AuditService", "nexusrag.ingest.v1.IngestService", "nexusrag.retrieval.v1.RetrievalService", "nexusrag.run.v1.RunService"} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, h.GetStatus(), svc)
	}
}

// recordThroughGRPC records one event the way another service does.
func recordThroughGRPC(t *testing.T, addr string, metadata map[string]any) {
	t.Helper()
	conn, err := grpcx.Dial(addr, nil)
	require.NoError(t, err)
	defer conn.Close()
	md, err := structpb.NewStruct(metadata)
	require.NoError(t, err)
	res, err := governancev1.NewAuditServiceClient(conn).RecordEvents(context.Background(), &governancev1.RecordEventsRequest{
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
	conn, err := grpcx.Dial(addr, nil)
	require.NoError(t, err)
	defer conn.Close()
	req := &retrievalv1.UpsertChunksRequest{TenantId: tenant, CorpusId: corpus, DocumentId: document}
	for _, tx := range texts {
		req.Chunks = append(req.Chunks, &retrievalv1.ChunkInput{Text: tx})
	}
	_, err = retrievalv1.NewRetrievalServiceClient(conn).UpsertChunks(context.Background(), req)
	require.NoError(t, err)
}
