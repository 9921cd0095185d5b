package providers_test

import (
	"context"
	"net"
	"testing"

	"cloud.google.com/go/discoveryengine/apiv1/discoveryenginepb"
	"github.com/stretchr/testify/require"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

// fakeSearch is an in-process Discovery Engine SearchService.
type fakeSearch struct {
	discoveryenginepb.UnimplementedSearchServiceServer
	fail codes.Code
	got  *discoveryenginepb.SearchRequest
}

func (f *fakeSearch) Search(_ context.Context, req *discoveryenginepb.SearchRequest) (*discoveryenginepb.SearchResponse, error) {
	f.got = req
	if f.fail != codes.OK {
		return nil, status.Error(f.fail, "fake refuses")
	}
	derived, _ := structpb.NewStruct(map[string]any{"extractive_answers": []any{map[string]any{"content": "Gates: green suites and a load test."}},
		"snippets": []any{map[string]any{"snippet": "a <b>snippet</b>"}}})
	snippetOnly, _ := structpb.NewStruct(map[string]any{"snippets": []any{map[string]any{"snippet": "only a snippet"}}})
	return &discoveryenginepb.SearchResponse{Results: []*discoveryenginepb.SearchResponse_SearchResult{
		{Id: "r1", Document: &discoveryenginepb.Document{Id: "doc-gates", DerivedStructData: derived}},
		{Id: "r2", Chunk: &discoveryenginepb.Chunk{Id: "c-7", Content: "Chunk text.", RelevanceScore: proto.Float64(0.8),
			DocumentMetadata: &discoveryenginepb.Chunk_DocumentMetadata{Uri: "gs://bucket/handbook.pdf"}}},
		{Id: "r3", Document: &discoveryenginepb.Document{Id: "doc-3", DerivedStructData: snippetOnly}},
	}}, nil
}

func newVertex(t *testing.T, f *fakeSearch) *providers.Vertex {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	discoveryenginepb.RegisterSearchServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	v := providers.NewVertex(providers.VertexOptions{Endpoint: lis.Addr().String(), ClientOptions: []option.ClientOption{
		option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}})
	t.Cleanup(func() { _ = v.Close() })
	return v
}

func TestVertexRetrieve(t *testing.T) {
	f := &fakeSearch{}
	v := newVertex(t, f)
	got, err := v.Retrieve(context.Background(), providers.VertexTarget{Project: "my-project", Location: "global", ResourceID: "ds-1"}, "release gates", 2)
	require.NoError(t, err)
	require.Equal(t, "projects/my-project/locations/global/collections/default_collection/dataStores/ds-1/servingConfigs/default_config", f.got.GetServingConfig())
	require.Equal(t, "release gates", f.got.GetQuery())
	require.EqualValues(t, 2, f.got.GetPageSize())
	require.Len(t, got, 2, "top_k bounds the results")
	require.Equal(t, providers.Passage{ID: "r1", DocumentID: "doc-gates", Text: "Gates: green suites and a load test.", Score: 1, Metadata: map[string]any{}}, got[0])
	require.Equal(t, providers.Passage{ID: "c-7", DocumentID: "gs://bucket/handbook.pdf", Text: "Chunk text.", Score: 0.8, Metadata: map[string]any{}}, got[1])

	got, err = v.Retrieve(context.Background(), providers.VertexTarget{Project: "p", Location: "global", ResourceID: "ds"}, "q", 10)
	require.NoError(t, err)
	require.Equal(t, "only a snippet", got[2].Text, "a snippet when there is no extractive answer")
}

func TestVertexServingConfig(t *testing.T) {
	for _, tt := range []struct{ resource, want string }{
		{"ds-1", "projects/p/locations/eu/collections/default_collection/dataStores/ds-1/servingConfigs/default_config"},
		{"projects/p/locations/global/collections/default_collection/engines/app-1", "projects/p/locations/global/collections/default_collection/engines/app-1/servingConfigs/default_config"},
		{"projects/p/locations/global/collections/default_collection/engines/app-1/servingConfigs/custom", "projects/p/locations/global/collections/default_collection/engines/app-1/servingConfigs/custom"},
	} {
		require.Equal(t, tt.want, providers.ServingConfig(providers.VertexTarget{Project: "p", Location: "eu", ResourceID: tt.resource}))
	}
}

func TestVertexErrors(t *testing.T) {
	for _, tt := range []struct {
		fail codes.Code
		code string
	}{
		{codes.PermissionDenied, providers.CodeVertexAuth},
		{codes.Unauthenticated, providers.CodeVertexAuth},
		{codes.NotFound, providers.CodeVertexRetrieval},
		{codes.InvalidArgument, providers.CodeVertexRetrieval},
	} {
		v := newVertex(t, &fakeSearch{fail: tt.fail})
		_, err := v.Retrieve(context.Background(), providers.VertexTarget{Project: "my-project", Location: "global", ResourceID: "ds"}, "q", 3)
		require.Equal(t, tt.code, errCode(err), tt.fail.String())
	}

	_, err := newVertex(t, &fakeSearch{}).Retrieve(context.Background(), providers.VertexTarget{Project: "p", Location: "global"}, "q", 3)
	require.Equal(t, providers.CodeVertexConfigMissing, errCode(err), "no resource id")

	// No credentials: the client cannot start, and says so (no metadata-server probe:
	// the credentials file named does not exist).
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", t.TempDir()+"/missing.json")
	noCreds := providers.NewVertex(providers.VertexOptions{Endpoint: "127.0.0.1:1"})
	_, err = noCreds.Retrieve(context.Background(), providers.VertexTarget{Project: "p", Location: "global", ResourceID: "ds"}, "q", 3)
	require.Equal(t, providers.CodeVertexConfigMissing, errCode(err))
}
