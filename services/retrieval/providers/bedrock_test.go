package providers_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/status"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

// fakeBedrock answers the Agent Runtime Retrieve API the way AWS does, or with the error
// it is told to give.
type fakeBedrock struct {
	errType string
	status  int
	got     map[string]any
	authz   string
	path    string
}

func (f *fakeBedrock) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.path, f.authz = r.URL.Path, r.Header.Get("Authorization")
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &f.got)
	w.Header().Set("Content-Type", "application/json")
	if f.errType != "" {
		w.Header().Set("X-Amzn-ErrorType", f.errType)
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(`{"message":"fake says no"}`))
		return
	}
	_, _ = w.Write([]byte(`{"retrievalResults":[
		{"content":{"text":"Release gates: all suites green."},"location":{"type":"S3","s3Location":{"uri":"s3://kb/gates.md"}},
		 "metadata":{"x-amz-bedrock-kb-chunk-id":"chunk-1","team":"platform"},"score":0.91},
		{"content":{"text":"Second passage."},"location":{"type":"WEB","webLocation":{"url":"https://example.invalid/doc"}},"score":0.42}]}`))
}

func newBedrock(t *testing.T, f http.Handler) (*providers.Bedrock, string) {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	b := providers.NewBedrock(context.Background(), providers.BedrockOptions{BaseEndpoint: srv.URL, MaxAttempts: 1},
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret-example", "")),
		config.WithRegion("us-east-1"))
	return b, srv.URL
}

func errCode(err error) string {
	e, _ := apierr.FromStatus(status.Convert(err))
	return e.Code
}

func TestBedrockRetrieve(t *testing.T) {
	f := &fakeBedrock{}
	b, _ := newBedrock(t, f)
	got, err := b.Retrieve(context.Background(), providers.BedrockTarget{KnowledgeBaseID: "KB123", Region: "eu-west-1"}, "release gates?", 4)
	require.NoError(t, err)
	require.Equal(t, "/knowledgebases/KB123/retrieve", f.path)
	require.Equal(t, "release gates?", f.got["retrievalQuery"].(map[string]any)["text"])
	require.EqualValues(t, 4, f.got["retrievalConfiguration"].(map[string]any)["vectorSearchConfiguration"].(map[string]any)["numberOfResults"])
	require.True(t, strings.HasPrefix(f.authz, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"), "signed: %s", f.authz)
	require.Contains(t, f.authz, "/eu-west-1/bedrock/aws4_request", "signed for the corpus's region")

	require.Len(t, got, 2)
	require.Equal(t, providers.Passage{ID: "chunk-1", DocumentID: "s3://kb/gates.md", Text: "Release gates: all suites green.", Score: 0.91,
		Metadata: map[string]any{"x-amz-bedrock-kb-chunk-id": "chunk-1", "team": "platform"}}, got[0])
	require.Equal(t, "https://example.invalid/doc", got[1].DocumentID)
	require.Len(t, got[1].ID, 16, "derived id when the provider names none")
}

func TestBedrockErrors(t *testing.T) {
	tests := []struct {
		name, errType string
		status        int
		code          string
	}{
		{"access denied", "AccessDeniedException", 403, providers.CodeAWSAuth},
		{"unknown key", "UnrecognizedClientException", 403, providers.CodeAWSAuth},
		{"expired token", "ExpiredTokenException", 400, providers.CodeAWSAuth},
		{"throttled", "ThrottlingException", 429, providers.CodeAWSRetrieval},
		{"no such knowledge base", "ResourceNotFoundException", 404, providers.CodeAWSRetrieval},
		{"server error", "InternalServerException", 500, providers.CodeAWSRetrieval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, _ := newBedrock(t, &fakeBedrock{errType: tt.errType, status: tt.status})
			_, err := b.Retrieve(context.Background(), providers.BedrockTarget{KnowledgeBaseID: "KB", Region: "us-east-1"}, "q", 3)
			require.Equal(t, tt.code, errCode(err), "%v", err)
			require.NotContains(t, err.Error(), "secret-example")
		})
	}
}

func TestBedrockConfigurationProblems(t *testing.T) {
	fake := &fakeBedrock{}
	b, url := newBedrock(t, fake)
	_, err := b.Retrieve(context.Background(), providers.BedrockTarget{Region: "us-east-1"}, "q", 3)
	require.Equal(t, providers.CodeAWSConfigMissing, errCode(err), "no knowledge base id")

	// No credentials anywhere in the default chain: refused before any request is sent.
	for _, v := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"} {
		t.Setenv(v, "")
	}
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	none := providers.NewBedrock(context.Background(), providers.BedrockOptions{BaseEndpoint: url, MaxAttempts: 1}, config.WithRegion("us-east-1"))
	_, err = none.Retrieve(context.Background(), providers.BedrockTarget{KnowledgeBaseID: "KB", Region: "us-east-1"}, "q", 3)
	require.Equal(t, providers.CodeAWSConfigMissing, errCode(err))
	require.Empty(t, fake.path, "nothing was sent, signed or not")

	// An endpoint nobody listens on.
	down := providers.NewBedrock(context.Background(), providers.BedrockOptions{BaseEndpoint: "http://127.0.0.1:1", MaxAttempts: 1},
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")), config.WithRegion("us-east-1"))
	_, err = down.Retrieve(context.Background(), providers.BedrockTarget{KnowledgeBaseID: "KB", Region: "us-east-1"}, "q", 3)
	require.Equal(t, providers.CodeAWSRetrieval, errCode(err))
}
