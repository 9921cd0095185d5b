package retrieval_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/services/retrieval"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

// TestRetrieveRoutesToBedrock: a corpus configured for aws_bedrock_kb is answered by
// the Bedrock API (a local fake behind the real SDK), errors keep their codes.
func TestRetrieveRoutesToBedrock(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	fail := false
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if fail {
			w.Header().Set("X-Amzn-ErrorType", "AccessDeniedException")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"message":"no"}`))
			return
		}
		require.Equal(t, "/knowledgebases/KB9/retrieve", r.URL.Path)
		_, _ = w.Write([]byte(`{"retrievalResults":[{"content":{"text":"From Bedrock."},"location":{"type":"S3","s3Location":{"uri":"s3://b/doc.md"}},"score":0.7}]}`))
	}))
	defer fake.Close()
	bedrock := providers.NewBedrock(context.Background(), providers.BedrockOptions{BaseEndpoint: fake.URL, MaxAttempts: 1},
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")), awsconfig.WithRegion("us-east-1"))
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: retrieval.SessionParams()}, retrieval.Migrations())
	client, _, _ := serve(t, pool, retrieval.NewHashEmbedder(retrieval.DefaultDim), retrieval.Cloud{Bedrock: bedrock})

	cfg, _ := structpbNew(map[string]any{"retrieval": map[string]any{"provider": "aws_bedrock_kb", "knowledge_base_id": "KB9", "region": "us-west-2", "top_k_default": 3}})
	_, err := client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "kb", AllowMissing: true, Name: proto.String("kb"), ProviderConfigJson: cfg})
	require.NoError(t, err)
	res, err := client.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "kb", Query: "anything"})
	require.NoError(t, err)
	require.Equal(t, "aws_bedrock_kb", res.GetProvider())
	require.Len(t, res.GetChunks(), 1)
	require.Equal(t, "s3://b/doc.md", res.GetChunks()[0].GetDocumentId())
	require.Equal(t, "From Bedrock.", res.GetChunks()[0].GetText())

	fail = true
	_, err = client.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "kb", Query: "anything"})
	require.Equal(t, providers.CodeAWSAuth, code(err), "the provider's code survives the gRPC hop")
}
