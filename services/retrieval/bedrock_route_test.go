package retrieval_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/breaker"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/logging"
	"github.com/nexusrag/nexusrag/pkg/pgstore"
	"github.com/nexusrag/nexusrag/pkg/pgstore/pgtest"
	"github.com/nexusrag/nexusrag/pkg/redistest"
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
	client, _, _ := serve(t, pool, retrieval.NewHashEmbedder(retrieval.DefaultDim), bedrock, nil)

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

// TestProviderFaults: a Bedrock fake that hangs, then errors, then recovers. Each attempt
// is bounded by the timeout and retried; consecutive failures open the shared breaker,
// which fails fast without calling Bedrock; after the open period one probe goes, and its
// success closes the breaker.
func TestProviderFaults(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	var mode atomic.Value
	mode.Store("hang")
	var hits atomic.Int32
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch mode.Load() {
		case "hang": // longer than the call timeout; bounded so that the server can close
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
			return
		case "error":
			w.Header().Set("X-Amzn-ErrorType", "InternalServerException")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"boom"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"retrievalResults":[{"content":{"text":"Back."},"location":{"type":"S3","s3Location":{"uri":"s3://b/x"}},"score":0.5}]}`))
	}))
	defer fake.Close()
	bedrock := providers.NewBedrock(context.Background(), providers.BedrockOptions{BaseEndpoint: fake.URL, MaxAttempts: 1},
		awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET", "")), awsconfig.WithRegion("us-east-1"))
	rdb, prefix := redistest.New(t)
	now := time.Unix(1_800_000_000, 0)
	var clock sync.Mutex
	br := breaker.New(rdb, prefix, "bedrock", breaker.Settings{FailureThreshold: 4, OpenFor: 30 * time.Second, ProbeTimeout: time.Second},
		nil, logging.Discard()).WithClock(func() time.Time { clock.Lock(); defer clock.Unlock(); return now })
	calls := extcall.New("bedrock", extcall.Policy{Timeout: 100 * time.Millisecond, Attempts: 2, BaseBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, br)
	pool := pgtest.NewPoolWith(t, pgstore.Options{RuntimeParams: retrieval.SessionParams()}, retrieval.Migrations())
	client, _, _ := serve(t, pool, retrieval.NewHashEmbedder(retrieval.DefaultDim), bedrock, calls)
	cfg, _ := structpbNew(map[string]any{"retrieval": map[string]any{"provider": "aws_bedrock_kb", "knowledge_base_id": "KB9", "region": "us-east-1"}})
	_, err := client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "kb", AllowMissing: true, ProviderConfigJson: cfg})
	require.NoError(t, err)
	retrieve := func() error {
		_, err := client.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "kb", Query: "anything"})
		return err
	}

	start := time.Now()
	require.Equal(t, extcall.CodeTimeout, code(retrieve()), "a hanging provider times out")
	require.EqualValues(t, 2, hits.Load(), "and the timeout is retried once")
	require.Less(t, time.Since(start), 5*time.Second)

	mode.Store("error")
	require.Equal(t, providers.CodeAWSRetrieval, code(retrieve()), "a failing provider keeps its code")
	require.EqualValues(t, 4, hits.Load())
	state, _ := br.State(context.Background())
	require.Equal(t, breaker.Open, state, "four consecutive failures opened the breaker")

	require.Equal(t, breaker.CodeCircuitOpen, code(retrieve()), "open: fails fast")
	require.EqualValues(t, 4, hits.Load(), "without calling Bedrock")

	mode.Store("ok")
	clock.Lock()
	now = now.Add(30 * time.Second)
	clock.Unlock()
	require.NoError(t, retrieve(), "half-open: the probe goes and succeeds")
	state, _ = br.State(context.Background())
	require.Equal(t, breaker.Closed, state)
	require.NoError(t, retrieve())
}
