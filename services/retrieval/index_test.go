package retrieval_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/services/retrieval"
)

var corpusDocs = map[string][]string{
	"gates": {
		"Agent 2.0 release gates: the release is blocked until every gate passes.",
		"Gate one is a green end-to-end suite; gate two is a signed-off security review; gate three is a load test at twice peak traffic.",
	},
	"testing": {
		"The testing strategy for Agent 2.0 combines unit tests, integration tests against real databases, and end-to-end tests of the built binary.",
	},
	"cooking": {"A good risotto needs warm stock, patience and constant stirring.", "Add the parmesan off the heat."},
	"finance": {"Quarterly revenue grew eleven percent, led by the European market."},
}

func upsert(t *testing.T, client retrievalv1.RetrievalServiceClient, tenant, corpus, doc string, texts ...string) {
	t.Helper()
	req := &retrievalv1.UpsertChunksRequest{TenantId: tenant, CorpusId: corpus, DocumentId: doc}
	for _, tx := range texts {
		req.Chunks = append(req.Chunks, &retrievalv1.ChunkInput{Text: tx})
	}
	res, err := client.UpsertChunks(context.Background(), req)
	require.NoError(t, err)
	require.EqualValues(t, len(texts), res.GetChunkCount())
}

func seed(t *testing.T, client retrievalv1.RetrievalServiceClient, tenant, corpus string) {
	t.Helper()
	_, err := client.UpdateCorpus(as(tenant, apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: corpus, AllowMissing: true})
	require.NoError(t, err)
	for doc, texts := range corpusDocs {
		upsert(t, client, tenant, corpus, doc, texts...)
	}
}

func retrieve(t *testing.T, client retrievalv1.RetrievalServiceClient, tenant, corpus, query string, k int32) []*retrievalv1.RetrievedChunk {
	t.Helper()
	res, err := client.Retrieve(as(tenant, apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: corpus, Query: query, TopK: k})
	require.NoError(t, err)
	require.Equal(t, retrieval.ProviderLocal, res.GetProvider())
	return res.GetChunks()
}

// consistent checks that the BM25 statistics agree with the chunks actually stored.
func consistent(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	var bad int
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FROM retrieval.corpora c
		 WHERE chunk_count <> (SELECT count(*) FROM retrieval.chunks k WHERE k.tenant_id = c.tenant_id AND k.corpus_id = c.corpus_id)
		    OR term_total <> (SELECT COALESCE(sum(term_count), 0) FROM retrieval.chunks k WHERE k.tenant_id = c.tenant_id AND k.corpus_id = c.corpus_id)`).Scan(&bad))
	require.Zero(t, bad, "corpus counters match the chunks")
	require.NoError(t, pool.QueryRow(ctx, `
		SELECT count(*) FROM retrieval.chunks
		 WHERE cardinality(terms) <> cardinality(term_freqs)
		    OR term_count <> (SELECT COALESCE(sum(f), 0) FROM unnest(term_freqs) AS f)`).Scan(&bad))
	require.Zero(t, bad, "each chunk's terms and frequencies account for its length")
}

func TestHybridRetrieval(t *testing.T) {
	client, _, pool := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	seed(t, client, "t1", "c1")
	consistent(t, pool)

	// The offline hashed vectors are off by default (ADR 0007); a corpus can weigh them in.
	_, err := client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c1",
		ProviderConfigJson: config(t, map[string]any{"retrieval": map[string]any{"vector_weight": 0.25}})})
	require.NoError(t, err)
	hits := retrieve(t, client, "t1", "c1", "What are the release gates for Agent 2.0?", 3)
	require.Len(t, hits, 3)
	require.Equal(t, "gates", hits[0].GetDocumentId())
	require.Contains(t, hits[0].GetText(), "gate")
	require.Greater(t, hits[0].GetScore(), 1.0/61, "found by both arms: more than one arm's best rank alone")
	for i := 1; i < len(hits); i++ {
		require.GreaterOrEqual(t, hits[i-1].GetScore(), hits[i].GetScore(), "best first")
	}

	hits = retrieve(t, client, "t1", "c1", "how do we test agent two?", 1)
	require.Equal(t, "testing", hits[0].GetDocumentId())
	hits = retrieve(t, client, "t1", "c1", "risotto", 5)
	require.Equal(t, "cooking", hits[0].GetDocumentId())

	// A query of stop words only, or of words no chunk has, finds nothing rather than noise.
	require.Empty(t, retrieve(t, client, "t1", "c1", "the of and", 5))

	res, err := client.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "gates"})
	require.NoError(t, err)
	require.LessOrEqual(t, len(res.GetChunks()), 5, "top_k 0 means the corpus default (5)")
}

// TestRankingSettings: a corpus's ranking settings change the search and come back with
// every answer, defaults filled in.
func TestRankingSettings(t *testing.T) {
	client, _, _ := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	seed(t, client, "t1", "c1")
	ask := func(query string) *retrievalv1.RetrieveResponse {
		t.Helper()
		res, err := client.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: query, TopK: 3})
		require.NoError(t, err)
		return res
	}
	res := ask("What are the release gates for Agent 2.0?")
	require.True(t, proto.Equal(&retrievalv1.RankingSettings{LexicalWeight: 1, VectorWeight: 0, CandidateDepth: 50}, res.GetRanking()), "%v", res.GetRanking())
	require.Equal(t, "gates", res.GetChunks()[0].GetDocumentId())
	require.InDelta(t, 1.0/61, res.GetChunks()[0].GetScore(), 1e-12, "lexical arm only: its best rank")

	for _, tt := range []struct {
		name string
		set  map[string]any
		want *retrievalv1.RankingSettings
	}{
		{"feedback and a deeper fusion", map[string]any{"feedback": true, "vector_weight": 0.5, "candidate_depth": 120},
			&retrievalv1.RankingSettings{LexicalWeight: 1, VectorWeight: 0.5, CandidateDepth: 120, Feedback: true}},
		{"vectors only", map[string]any{"lexical_weight": 0, "vector_weight": 1},
			&retrievalv1.RankingSettings{LexicalWeight: 0, VectorWeight: 1, CandidateDepth: 50}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c1",
				ProviderConfigJson: config(t, map[string]any{"retrieval": tt.set})})
			require.NoError(t, err)
			res := ask("What are the release gates for Agent 2.0?")
			require.True(t, proto.Equal(tt.want, res.GetRanking()), "%v", res.GetRanking())
			require.Equal(t, "gates", res.GetChunks()[0].GetDocumentId())
			require.Len(t, res.GetChunks(), 3)
		})
	}

	_, err := client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c1",
		ProviderConfigJson: config(t, map[string]any{"retrieval": map[string]any{"candidate_depth": 5}})})
	require.Equal(t, retrieval.CodeInvalidProviderConfig, code(err))
}

func TestRetrievalIsTenantIsolated(t *testing.T) {
	client, _, _ := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	seed(t, client, "tenant-a", "shared")
	_, err := client.UpdateCorpus(as("tenant-b", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "shared", AllowMissing: true})
	require.NoError(t, err)
	upsert(t, client, "tenant-b", "shared", "b-secret", "Tenant B's confidential release gates for Agent 2.0 and its secret launch plan.")

	for _, h := range retrieve(t, client, "tenant-a", "shared", "confidential release gates secret launch plan", 50) {
		require.NotEqual(t, "b-secret", h.GetDocumentId(), "tenant B's chunk never reaches tenant A")
	}
	hits := retrieve(t, client, "tenant-b", "shared", "release gates", 50)
	require.Len(t, hits, 1)
	require.Equal(t, "b-secret", hits[0].GetDocumentId())
	_, err = client.Retrieve(as("tenant-c", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "shared", Query: "gates"})
	require.Equal(t, apierr.CodeNotFound, code(err))
}

func TestUpsertReplacesAndDeleteRemoves(t *testing.T) {
	client, _, pool := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	seed(t, client, "t1", "c1")
	// The same job twice: same chunks, no duplicates.
	upsert(t, client, "t1", "c1", "gates", corpusDocs["gates"]...)
	upsert(t, client, "t1", "c1", "gates", corpusDocs["gates"]...)
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), `SELECT count(*) FROM retrieval.chunks WHERE document_id = 'gates'`).Scan(&n))
	require.Equal(t, 2, n)
	consistent(t, pool)

	upsert(t, client, "t1", "c1", "gates", "Release gates were replaced by a single launch review.")
	hits := retrieve(t, client, "t1", "c1", "gate three load test twice peak traffic", 10)
	for _, h := range hits {
		require.NotContains(t, h.GetText(), "twice peak", "old chunks are gone")
	}
	consistent(t, pool)

	res, err := client.DeleteDocumentChunks(context.Background(), &retrievalv1.DeleteDocumentChunksRequest{TenantId: "t1", CorpusId: "c1", DocumentId: "gates"})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.GetDeleted())
	for _, h := range retrieve(t, client, "t1", "c1", "launch review", 10) {
		require.NotEqual(t, "gates", h.GetDocumentId())
	}
	consistent(t, pool)
}

func TestConcurrentWritersKeepStatisticsExact(t *testing.T) {
	client, _, pool := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	_, err := client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c1", AllowMissing: true})
	require.NoError(t, err)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 5 {
				doc := fmt.Sprintf("doc-%d", (w*5+i)%12) // overlapping documents: replaces race with inserts
				upsert(t, client, "t1", "c1", doc, fmt.Sprintf("release gate %d shared words agent", i), strings.Repeat("testing strategy ", w+1))
			}
		})
	}
	wg.Wait()
	consistent(t, pool)
}

// Retrieval while documents are indexed and deleted answers every query: the corpus's
// statistics are read in one snapshot.
func TestRetrieveWhileTheCorpusChanges(t *testing.T) {
	client, _, _ := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	_, err := client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c1", AllowMissing: true})
	require.NoError(t, err)
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				doc := fmt.Sprintf("doc-%d-%d", w, i%3)
				upsert(t, client, "t1", "c1", doc, "release gate gate rollout wave", "release gate agent")
				_, err := client.DeleteDocumentChunks(context.Background(), &retrievalv1.DeleteDocumentChunksRequest{TenantId: "t1", CorpusId: "c1", DocumentId: doc})
				require.NoError(t, err)
			}
		})
	}
	for range 150 {
		_, err := client.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "release gate gate rollout", TopK: 5})
		require.NoError(t, err)
	}
	stop()
	wg.Wait()
}

func TestRetrieveRefusesWhatItCannotAnswer(t *testing.T) {
	client, _, pool := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	seed(t, client, "t1", "c1")
	reader := as("t1", apiv1.Role_ROLE_READER)
	for _, tt := range []struct {
		req  *retrievalv1.RetrieveRequest
		code string
	}{
		{&retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "x", TopK: 51}, apierr.CodeInvalidArgument},
		{&retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "x", TopK: -1}, apierr.CodeInvalidArgument},
		{&retrievalv1.RetrieveRequest{CorpusId: "c1", Query: ""}, apierr.CodeInvalidArgument},
		{&retrievalv1.RetrieveRequest{CorpusId: "nope", Query: "x"}, apierr.CodeNotFound},
	} {
		_, err := client.Retrieve(reader, tt.req)
		require.Equal(t, tt.code, code(err), "%v", tt.req)
	}

	// Chunks embedded another way are refused, and so are queries of a corpus indexed another way.
	other, _, _ := serve(t, pool, retrieval.NewHashEmbedder(256), nil, nil)
	_, err := other.UpsertChunks(context.Background(), &retrievalv1.UpsertChunksRequest{TenantId: "t1", CorpusId: "c1", DocumentId: "d",
		Chunks: []*retrievalv1.ChunkInput{{Text: "x"}}})
	require.Equal(t, retrieval.CodeEmbedderMismatch, code(err))
	_, err = other.Retrieve(reader, &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: "gates"})
	require.Equal(t, retrieval.CodeEmbedderMismatch, code(err))

	bedrock, _ := structpbNew(map[string]any{"retrieval": map[string]any{"provider": "aws_bedrock_kb", "knowledge_base_id": "KB", "region": "us-east-1"}})
	_, err = client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c2", AllowMissing: true, Name: proto.String("kb"), ProviderConfigJson: bedrock})
	require.NoError(t, err)
	_, err = client.Retrieve(reader, &retrievalv1.RetrieveRequest{CorpusId: "c2", Query: "x"})
	require.Equal(t, "AWS_CONFIG_MISSING", code(err), "no Bedrock client in this deployment")

	vertex, _ := structpbNew(map[string]any{"retrieval": map[string]any{"provider": "gcp_vertex", "project": "my-project", "location": "global", "resource_id": "ds"}})
	_, err = client.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c3", AllowMissing: true, ProviderConfigJson: vertex})
	require.NoError(t, err)
	_, err = client.Retrieve(reader, &retrievalv1.RetrieveRequest{CorpusId: "c3", Query: "x"})
	require.Equal(t, "VERTEX_RETRIEVAL_CONFIG_MISSING", code(err), "no Vertex client in this deployment")
}

// TestVersionFencesKeepDeletedDocumentsGone: a write of a version that a delete removed
// (a worker finishing after the delete), or that a newer version overtook, is dropped;
// a re-created document (a newer version) is written.
func TestVersionFencesKeepDeletedDocumentsGone(t *testing.T) {
	client, _, pool := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	seed(t, client, "t1", "c1")
	write := func(doc string, version int64, text string) *retrievalv1.UpsertDocumentsResponse {
		t.Helper()
		res, err := client.UpsertDocuments(context.Background(), &retrievalv1.UpsertDocumentsRequest{TenantId: "t1", CorpusId: "c1",
			Documents: []*retrievalv1.DocumentChunks{{DocumentId: doc, Version: version, Chunks: []*retrievalv1.ChunkInput{{Text: text}}},
				{DocumentId: "other", Version: 1, Chunks: []*retrievalv1.ChunkInput{{Text: "an unrelated note about zebras"}}}}})
		require.NoError(t, err)
		return res
	}
	cited := func(query string) bool {
		for _, h := range retrieve(t, client, "t1", "c1", query, 10) {
			if h.GetDocumentId() == "ghost" {
				return true
			}
		}
		return false
	}

	require.Empty(t, write("ghost", 5, "the ghost ship sails at midnight").GetFenced())
	require.True(t, cited("ghost ship midnight"))
	res, err := client.DeleteDocumentChunks(context.Background(), &retrievalv1.DeleteDocumentChunksRequest{TenantId: "t1", CorpusId: "c1", DocumentId: "ghost", Version: 5})
	require.NoError(t, err)
	require.EqualValues(t, 1, res.GetDeleted())

	late := write("ghost", 5, "the ghost ship sails at midnight")
	require.Equal(t, []string{"ghost"}, late.GetFenced(), "the deleted version written late is dropped")
	require.Equal(t, []int32{0, 1}, late.GetChunkCounts(), "the batch's other document is written")
	require.False(t, cited("ghost ship midnight"))
	require.Equal(t, []string{"ghost"}, write("ghost", 4, "an older ghost").GetFenced())
	consistent(t, pool)

	require.Empty(t, write("ghost", 9, "the ghost ship returns at dawn").GetFenced(), "a re-created document has a newer version")
	require.True(t, cited("ghost ship dawn"))
	require.Equal(t, []string{"ghost"}, write("ghost", 7, "an overtaken version").GetFenced(), "an overtaken version does not replace a newer one")
	require.True(t, cited("ghost ship dawn"))
	consistent(t, pool)

	_, err = client.DeleteDocumentChunks(context.Background(), &retrievalv1.DeleteDocumentChunksRequest{TenantId: "t1", CorpusId: "c1", DocumentId: "ghost", Version: -1})
	require.Equal(t, apierr.CodeInvalidArgument, code(err))
}

// TestReplicasSeeWritesAndSettingsAtOnce: a replica that cached a corpus's record and
// index answers with another replica's writes and settings as soon as they commit.
func TestReplicasSeeWritesAndSettingsAtOnce(t *testing.T) {
	a, _, pool := newClientWithPool(t, retrieval.NewHashEmbedder(retrieval.DefaultDim))
	b, _, _ := serve(t, pool, retrieval.NewHashEmbedder(retrieval.DefaultDim), nil, nil)
	seed(t, a, "t1", "c1")
	ask := func(client retrievalv1.RetrievalServiceClient, query string) *retrievalv1.RetrieveResponse {
		t.Helper()
		res, err := client.Retrieve(as("t1", apiv1.Role_ROLE_READER), &retrievalv1.RetrieveRequest{CorpusId: "c1", Query: query})
		require.NoError(t, err)
		return res
	}
	require.Equal(t, "cooking", ask(a, "risotto").GetChunks()[0].GetDocumentId())
	require.NotEqualValues(t, 20, ask(a, "risotto").GetRanking().GetCandidateDepth())

	upsert(t, b, "t1", "c1", "cooking", "Braise the fennel slowly.")
	upsert(t, b, "t1", "c1", "pasta", "A risotto is not pasta; cacio e pepe is.")
	hits := ask(a, "risotto").GetChunks()
	require.Len(t, hits, 1, "the old cooking chunks are gone on the replica that did not write")
	require.Equal(t, "pasta", hits[0].GetDocumentId())

	_, err := b.UpdateCorpus(as("t1", apiv1.Role_ROLE_EDITOR), &retrievalv1.UpdateCorpusRequest{CorpusId: "c1",
		ProviderConfigJson: config(t, map[string]any{"retrieval": map[string]any{"top_k_default": 2, "candidate_depth": 20}})})
	require.NoError(t, err)
	res := ask(a, "gate")
	require.EqualValues(t, 20, res.GetRanking().GetCandidateDepth(), "the new settings apply at once")
	require.Len(t, res.GetChunks(), 2, "and so does the new default top_k")
}
