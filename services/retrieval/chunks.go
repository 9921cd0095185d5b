package retrieval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/textproc"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

// Limits of the chunk API.
const (
	maxQueryChars = 4096
	maxChunks     = 10_000
	// maxChunkBytes admits the largest chunk the ingest service makes (20,000 characters
	// of up to 4 bytes each).
	maxChunkBytes     = 80 << 10
	maxDocumentID     = 256
	maxBatchDocuments = 500
	maxBatchChunks    = 20_000
)

// Retrieve routes a query to the corpus's provider.
func (s *Server) Retrieve(ctx context.Context, req *retrievalv1.RetrieveRequest) (*retrievalv1.RetrieveResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(req.GetQuery()); n == 0 || n > maxQueryChars {
		return nil, apierr.InvalidArgument("query", fmt.Sprintf("query must be 1 to %d characters", maxQueryChars))
	}
	if k := req.GetTopK(); k != 0 && (k < MinTopK || k > MaxTopK) {
		return nil, apierr.InvalidArgument("top_k", fmt.Sprintf("top_k must be %d to %d", MinTopK, MaxTopK))
	}
	corpus, err := s.store.GetCorpus(ctx, p.TenantID, req.GetCorpusId())
	if errors.Is(err, errCorpusNotFound) {
		return nil, apierr.NotFound("corpus", req.GetCorpusId())
	}
	if err != nil {
		return nil, err
	}
	topK := int(req.GetTopK())
	if topK == 0 {
		topK = corpus.Config.TopKDefault
	}
	hits, err := s.route(ctx, p.TenantID, corpus, req.GetQuery(), topK)
	if err != nil {
		return nil, err
	}
	out := &retrievalv1.RetrieveResponse{Provider: corpus.Config.Provider}
	for _, h := range hits {
		md, _ := structpb.NewStruct(h.metadata)
		out.Chunks = append(out.Chunks, &retrievalv1.RetrievedChunk{ChunkId: h.chunkID, DocumentId: h.documentID, Text: h.text,
			Score: h.score, Ordinal: int32(h.ordinal), Metadata: md})
	}
	s.log.DebugContext(ctx, "retrieve", slog.String("corpus_id", corpus.CorpusID), slog.Int("hits", len(out.Chunks)))
	return out, nil
}

// route sends a query to the corpus's provider.
func (s *Server) route(ctx context.Context, tenant string, corpus CorpusRecord, query string, topK int) ([]hit, error) {
	switch c := corpus.Config; c.Provider {
	case ProviderLocal:
		return s.local.retrieve(ctx, tenant, corpus, query, topK)
	case ProviderBedrock:
		if s.cloud.Bedrock == nil {
			return nil, apierr.New(codes.FailedPrecondition, providers.CodeAWSConfigMissing, "Bedrock retrieval is not configured in this deployment")
		}
		var passages []providers.Passage
		err := s.cloud.BedrockCalls.Do(ctx, true, func(ctx context.Context) (err error) {
			passages, err = s.cloud.Bedrock.Retrieve(ctx, providers.BedrockTarget{KnowledgeBaseID: c.KnowledgeBaseID, Region: c.Region}, query, topK)
			return err
		})
		return passageHits(passages), err
	case ProviderVertex:
		if s.cloud.Vertex == nil {
			return nil, apierr.New(codes.FailedPrecondition, providers.CodeVertexConfigMissing, "Vertex AI Search retrieval is not configured in this deployment")
		}
		var passages []providers.Passage
		err := s.cloud.VertexCalls.Do(ctx, true, func(ctx context.Context) (err error) {
			passages, err = s.cloud.Vertex.Retrieve(ctx, providers.VertexTarget{Project: c.Project, Location: c.Location, ResourceID: c.ResourceID}, query, topK)
			return err
		})
		return passageHits(passages), err
	}
	// ParseProviderConfig admits only the providers above.
	return nil, fmt.Errorf("corpus %s: unrouted provider %q", corpus.CorpusID, corpus.Config.Provider)
}

func passageHits(ps []providers.Passage) []hit {
	out := make([]hit, len(ps))
	for i, p := range ps {
		out[i] = hit{chunkID: p.ID, documentID: p.DocumentID, text: p.Text, ordinal: i, metadata: p.Metadata, score: p.Score}
	}
	return out
}

// UpsertChunks embeds and stores a document's chunks, replacing its previous ones.
func (s *Server) UpsertChunks(ctx context.Context, req *retrievalv1.UpsertChunksRequest) (*retrievalv1.UpsertChunksResponse, error) {
	counts, err := s.upsert(ctx, req.GetTenantId(), req.GetCorpusId(),
		[]*retrievalv1.DocumentChunks{{DocumentId: req.GetDocumentId(), Chunks: req.GetChunks()}}, "")
	if err != nil {
		return nil, err
	}
	return &retrievalv1.UpsertChunksResponse{ChunkCount: counts[0], Embedder: s.local.embedder.Name()}, nil
}

// UpsertDocuments embeds and stores the chunks of several documents of one corpus in one
// transaction, replacing their previous ones.
func (s *Server) UpsertDocuments(ctx context.Context, req *retrievalv1.UpsertDocumentsRequest) (*retrievalv1.UpsertDocumentsResponse, error) {
	if n := len(req.GetDocuments()); n == 0 || n > maxBatchDocuments {
		return nil, apierr.InvalidArgument("documents", fmt.Sprintf("send 1 to %d documents", maxBatchDocuments))
	}
	counts, err := s.upsert(ctx, req.GetTenantId(), req.GetCorpusId(), req.GetDocuments(), "documents")
	if err != nil {
		return nil, err
	}
	return &retrievalv1.UpsertDocumentsResponse{ChunkCounts: counts, Embedder: s.local.embedder.Name()}, nil
}

// upsert validates, embeds and stores documents; field prefixes error fields ("" for the
// single-document request).
func (s *Server) upsert(ctx context.Context, tenant, corpus string, docs []*retrievalv1.DocumentChunks, field string) ([]int32, error) {
	ids := make([]string, len(docs))
	seen := make(map[string]bool, len(docs))
	var texts []string
	var inputs []*retrievalv1.ChunkInput
	counts := make([]int32, len(docs))
	for d, doc := range docs {
		prefix := ""
		if field != "" {
			prefix = fmt.Sprintf("%s[%d].", field, d)
		}
		if err := validateDocumentRef(tenant, corpus, doc.GetDocumentId()); err != nil {
			return nil, err
		}
		if seen[doc.GetDocumentId()] {
			return nil, apierr.InvalidArgument(prefix+"document_id", fmt.Sprintf("document %s appears twice", doc.GetDocumentId()))
		}
		seen[doc.GetDocumentId()] = true
		ids[d] = doc.GetDocumentId()
		if len(doc.GetChunks()) > maxChunks {
			return nil, apierr.InvalidArgument(prefix+"chunks", fmt.Sprintf("at most %d chunks per document", maxChunks))
		}
		for i, c := range doc.GetChunks() {
			if c.GetText() == "" || len(c.GetText()) > maxChunkBytes || !utf8.ValidString(c.GetText()) {
				return nil, apierr.InvalidArgument(fmt.Sprintf("%schunks[%d].text", prefix, i), fmt.Sprintf("chunk text must be valid UTF-8, 1 byte to %d KiB", maxChunkBytes>>10))
			}
			texts = append(texts, c.GetText())
			inputs = append(inputs, c)
		}
		counts[d] = int32(len(doc.GetChunks()))
	}
	if len(texts) > maxBatchChunks {
		return nil, apierr.InvalidArgument(field+"chunks", fmt.Sprintf("at most %d chunks per call", maxBatchChunks))
	}
	vectors, err := s.local.embedder.EmbedDocuments(ctx, texts)
	if err != nil {
		return nil, fmt.Errorf("embed %d chunks: %w", len(texts), err)
	}
	rows := make([]chunkRow, 0, len(texts))
	for d, doc := range docs {
		for i := range doc.GetChunks() {
			k := len(rows)
			terms := textproc.Terms(texts[k])
			tf := make(map[string]int, len(terms))
			for _, term := range terms {
				tf[term]++
			}
			md, _ := json.Marshal(inputs[k].GetMetadata().AsMap())
			rows = append(rows, chunkRow{id: fmt.Sprintf("%s:%d", ids[d], i), document: ids[d], text: texts[k], ordinal: i,
				metadata: md, terms: tf, length: len(terms), vector: vectors[k]})
		}
	}
	err = s.store.replaceDocuments(ctx, tenant, corpus, s.local.embedder.Name(), ids, rows)
	if errors.Is(err, errCorpusNotFound) {
		return nil, apierr.NotFound("corpus", corpus)
	}
	if err != nil {
		return nil, err
	}
	return counts, nil
}

// DeleteDocumentChunks removes a document's chunks.
func (s *Server) DeleteDocumentChunks(ctx context.Context, req *retrievalv1.DeleteDocumentChunksRequest) (*retrievalv1.DeleteDocumentChunksResponse, error) {
	if err := validateDocumentRef(req.GetTenantId(), req.GetCorpusId(), req.GetDocumentId()); err != nil {
		return nil, err
	}
	n, err := s.store.deleteDocumentChunks(ctx, req.GetTenantId(), req.GetCorpusId(), req.GetDocumentId())
	if err != nil {
		return nil, err
	}
	return &retrievalv1.DeleteDocumentChunksResponse{Deleted: int32(n)}, nil
}

func validateDocumentRef(tenant, corpus, document string) error {
	switch {
	case tenant == "":
		return apierr.InvalidArgument("tenant_id", "tenant_id is required on internal calls")
	case !corpusIDPattern.MatchString(corpus):
		return apierr.InvalidArgument("corpus_id", "corpus_id is not valid")
	case document == "" || len(document) > maxDocumentID:
		return apierr.InvalidArgument("document_id", fmt.Sprintf("document_id must be 1 to %d bytes", maxDocumentID))
	}
	return nil
}
