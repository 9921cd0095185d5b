package retrieval_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/audit/audittest"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/grpcx"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/retrieval"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

func newClient(t *testing.T) (retrievalv1.RetrievalServiceClient, *audittest.Recorder) {
	t.Helper()
	client, rec, _ := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	return client, rec
}

func newClientWithPool(t *testing.T, emb retrieval.Embedder) (retrievalv1.RetrievalServiceClient, *audittest.Recorder, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: retrieval.SessionParams()}, retrieval.Migrations())
	return serve(t, pool, emb, nil, nil)
}

// serve runs the service over pool with the local index and, when given, Bedrock, for
// tenants entitled to every feature.
func serve(t *testing.T, pool *pgxpool.Pool, emb retrieval.Embedder, bedrock *providers.Bedrock, bedrockCalls *extcall.Client) (retrievalv1.RetrievalServiceClient, *audittest.Recorder, *pgxpool.Pool) {
	t.Helper()
	return serveWith(t, pool, emb, bedrock, bedrockCalls, entitlements.Everything)
}

// serveWith is serve for tenants whose plan has the features ent grants.
func serveWith(t *testing.T, pool *pgxpool.Pool, emb retrieval.Embedder, bedrock *providers.Bedrock, bedrockCalls *extcall.Client,
	ent entitlements.Checker) (retrievalv1.RetrievalServiceClient, *audittest.Recorder, *pgxpool.Pool) {
	t.Helper()
	rec := &audittest.Recorder{}
	store := retrieval.NewStore(pool)
	router := retrieval.NewRouter(retrieval.NewLocalIndex(store, emb), bedrock, bedrockCalls, nil, nil)
	srv := grpcx.NewServer(grpcx.ServerOptions{Log: logging.Discard()})
	srv.Register(&retrievalv1.RetrievalService_ServiceDesc, retrieval.NewServer(store, router, ent, rec, logging.Discard()))
	conn, stop, err := grpcx.InProcess(srv)
	require.NoError(t, err)
	t.Cleanup(stop)
	return retrievalv1.NewRetrievalServiceClient(conn), rec, pool
}

func as(tenant string, role apiv1.Role) context.Context {
	return principal.With(context.Background(), principal.Principal{TenantID: tenant, KeyID: "k", Role: role})
}

func config(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	require.NoError(t, err)
	return s
}

func code(err error) string {
	e, _ := apierr.FromStatus(status.Convert(err))
	return e.Code
}

func TestCorporaLifecycle(t *testing.T) {
	client, rec := newClient(t)
	editor := as("t1", apiv1.Role_ROLE_EDITOR)

	_, err := client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "c1", Name: proto.String("Docs")})
	require.Equal(t, apierr.CodeNotFound, code(err), "no implicit creation")

	res, err := client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "c1", AllowMissing: true, ProviderConfigJson: config(t, map[string]any{})})
	require.NoError(t, err)
	require.True(t, res.GetCreated())
	require.Equal(t, "c1", res.GetCorpus().GetName(), "name defaults to the id")
	require.Equal(t, map[string]any{"retrieval": map[string]any{"provider": "local_pgvector", "top_k_default": float64(5)}},
		res.GetCorpus().GetProviderConfigJson().AsMap(), "{} normalized")

	bedrock := map[string]any{"retrieval": map[string]any{"provider": "aws_bedrock_kb", "knowledge_base_id": "KB1", "region": "eu-west-1", "top_k_default": 7}}
	res, err = client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "c1", Name: proto.String("Handbook"), ProviderConfigJson: config(t, bedrock)})
	require.NoError(t, err)
	require.False(t, res.GetCreated())
	require.Equal(t, "Handbook", res.GetCorpus().GetName())
	require.Equal(t, "aws_bedrock_kb", res.GetCorpus().GetProviderConfigJson().AsMap()["retrieval"].(map[string]any)["provider"])

	bad := map[string]any{"retrieval": map[string]any{"provider": "aws_bedrock_kb", "region": "eu-west-1"}}
	_, err = client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "c1", ProviderConfigJson: config(t, bad)})
	require.Equal(t, retrieval.CodeInvalidProviderConfig, code(err))
	got, err := client.GetCorpus(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.GetCorpusRequest{CorpusId: "c1"})
	require.NoError(t, err)
	require.Equal(t, "KB1", got.GetCorpus().GetProviderConfigJson().AsMap()["retrieval"].(map[string]any)["knowledge_base_id"], "a refused update changes nothing")

	_, err = client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "c1"})
	require.Equal(t, apierr.CodeInvalidArgument, code(err), "empty patch")
	_, err = client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "bad id!", AllowMissing: true})
	require.Equal(t, apierr.CodeInvalidArgument, code(err))
	_, err = client.UpdateCorpus(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.UpdateCorpusRequest{CorpusId: "c1", Name: proto.String("x")})
	require.Equal(t, codes.PermissionDenied, status.Code(err))

	recorded := rec.Events()
	require.Len(t, recorded, 2, "two successful updates audited")
	require.Equal(t, audit.TypeCorporaUpdated, recorded[1].Type)
	require.Equal(t, "c1", recorded[1].ResourceID)
}

func TestCorporaAreTenantScoped(t *testing.T) {
	client, _ := newClient(t)
	for _, tenant := range []string{"a", "b"} {
		_, err := client.UpdateCorpus(as(tenant, apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{
			CorpusId: "shared", Name: proto.String("corpus of " + tenant), AllowMissing: true})
		require.NoError(t, err)
	}
	_, err := client.UpdateCorpus(as("a", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "only-a", AllowMissing: true})
	require.NoError(t, err)

	got, err := client.GetCorpus(as("b", apiv1.Role_ROLE_READER), &retrievalv1.GetCorpusRequest{CorpusId: "shared"})
	require.NoError(t, err)
	require.Equal(t, "corpus of b", got.GetCorpus().GetName(), "same id, each tenant its own corpus")
	_, err = client.GetCorpus(as("b", apiv1.Role_ROLE_READER), &retrievalv1.GetCorpusRequest{CorpusId: "only-a"})
	require.Equal(t, apierr.CodeNotFound, code(err))
	_, err = client.UpdateCorpus(as("b", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "only-a", Name: proto.String("mine")})
	require.Equal(t, apierr.CodeNotFound, code(err))
	list, err := client.ListCorpora(as("b", apiv1.Role_ROLE_READER), &retrievalv1.ListCorporaRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetCorpora(), 1)
}

func TestListCorporaPages(t *testing.T) {
	client, _ := newClient(t)
	editor := as("t1", apiv1.Role_ROLE_EDITOR)
	for i := range 7 {
		_, err := client.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: fmt.Sprintf("c%02d", i), AllowMissing: true})
		require.NoError(t, err)
	}
	var ids []string
	token := ""
	for {
		res, err := client.ListCorpora(editor, &retrievalv1.ListCorporaRequest{PageSize: 3, PageToken: token})
		require.NoError(t, err)
		for _, c := range res.GetCorpora() {
			ids = append(ids, c.GetCorpusId())
		}
		if token = res.GetNextPageToken(); token == "" {
			break
		}
	}
	require.Equal(t, []string{"c00", "c01", "c02", "c03", "c04", "c05", "c06"}, ids)
	_, err := client.ListCorpora(editor, &retrievalv1.ListCorporaRequest{PageSize: 500})
	require.Equal(t, apierr.CodeInvalidArgument, code(err))
}

func structpbNew(m map[string]any) (*structpb.Struct, error) { return structpb.NewStruct(m) }

// The tenant's plan decides which providers its corpora may use: on every change of a
// corpus's provider, and on every retrieval.
func TestPlansDecideProviders(t *testing.T) {
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: retrieval.SessionParams()}, retrieval.Migrations())
	emb := retrieval.NewHashEmbedder(retrieval.DefaultDim)
	enterprise, _, _ := serveWith(t, pool, emb, nil, nil, entitlements.Everything)
	free, _, _ := serveWith(t, pool, emb, nil, nil, entitlements.Static{entitlements.RetrievalLocal})
	noPatch, _, _ := serveWith(t, pool, emb, nil, nil, entitlements.Static{entitlements.RetrievalLocal, entitlements.RetrievalBedrock})
	editor, reader := as("t1", apiv1.Role_ROLE_EDITOR), as("t1", apiv1.Role_ROLE_READER)
	bedrock := config(t, map[string]any{"retrieval": map[string]any{"provider": "aws_bedrock_kb", "knowledge_base_id": "KB1", "region": "eu-west-1"}})
	local := config(t, map[string]any{"retrieval": map[string]any{"provider": "local_pgvector"}})

	refusedFor := func(err error, feature string) {
		t.Helper()
		e, ok := apierr.FromStatus(status.Convert(err))
		require.True(t, ok, "%v", err)
		require.Equal(t, entitlements.CodeFeatureNotEnabled, e.Code)
		require.Equal(t, feature, e.Details["feature_key"])
	}
	_, err := free.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "kb", AllowMissing: true, ProviderConfigJson: bedrock})
	refusedFor(err, entitlements.RetrievalBedrock)
	_, err = noPatch.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "kb", AllowMissing: true, ProviderConfigJson: bedrock})
	refusedFor(err, entitlements.CorporaPatchProviderConfig)
	_, err = free.GetCorpus(reader, &retrievalv1.GetCorpusRequest{CorpusId: "kb"})
	require.Equal(t, codes.NotFound, status.Code(err), "a refused PATCH creates nothing")

	// Local stays local on every plan, name and settings included.
	_, err = free.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "docs", AllowMissing: true, ProviderConfigJson: local})
	require.NoError(t, err)
	_, err = free.Retrieve(reader, &retrievalv1.RetrieveRequest{CorpusId: "docs", Query: "anything"})
	require.NoError(t, err)

	// A Bedrock corpus made under a richer plan is refused once the plan lacks Bedrock.
	_, err = enterprise.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "kb", AllowMissing: true, ProviderConfigJson: bedrock})
	require.NoError(t, err)
	_, err = free.Retrieve(reader, &retrievalv1.RetrieveRequest{CorpusId: "kb", Query: "anything"})
	refusedFor(err, entitlements.RetrievalBedrock)
	// Same provider, other settings: not a change of provider.
	_, err = noPatch.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "kb", ProviderConfigJson: bedrock})
	require.NoError(t, err)
	// Back to local is a change of provider.
	_, err = noPatch.UpdateCorpus(editor, &retrievalv1.UpdateCorpusRequest{CorpusId: "kb", ProviderConfigJson: local})
	refusedFor(err, entitlements.CorporaPatchProviderConfig)
}
