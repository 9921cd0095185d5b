package retrieval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/entitlements"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/rollouts"
)

// Recorder is where the service sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.retrieval.v1.RetrievalService.
type Server struct {
	retrievalv1.UnimplementedRetrievalServiceServer
	store        *Store
	router       *Router
	entitlements entitlements.Checker
	rollouts     rollouts.Checker
	audit        Recorder
	log          *slog.Logger
}

// NewServer returns the RetrievalService implementation: router answers queries from
// each corpus's provider, and its local index's embedder embeds the chunks stored here;
// plans decide which providers a tenant may use (feature.retrieval.*).
func NewServer(store *Store, router *Router, ent entitlements.Checker, rec Recorder, log *slog.Logger) *Server {
	return &Server{store: store, router: router, entitlements: ent, audit: rec, log: log, rollouts: rollouts.None}
}

// WithRollouts makes the server follow the kill switches (kill.retrieval.<provider>
// refuses every retrieval from that provider's corpora).
func (s *Server) WithRollouts(c rollouts.Checker) *Server {
	s.rollouts = c
	return s
}

var corpusIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

const (
	defaultPageSize = 50
	maxPageSize     = 200
	maxNameLen      = 200
)

// ListCorpora lists the caller's tenant's corpora (a scoped key's only).
func (s *Server) ListCorpora(ctx context.Context, req *retrievalv1.ListCorporaRequest) (*retrievalv1.ListCorporaResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = defaultPageSize
	case size < 1 || size > maxPageSize:
		return nil, apierr.InvalidArgument("page_size", fmt.Sprintf("page_size must be 1 to %d", maxPageSize))
	}
	if t := req.GetPageToken(); t != "" && !corpusIDPattern.MatchString(t) {
		return nil, apierr.New(codes.InvalidArgument, "INVALID_PAGE_TOKEN", "page_token is not one this API issued", "field", "page_token")
	}
	list, err := s.store.ListCorpora(ctx, p.TenantID, p.CorpusIDs, req.GetPageToken(), size)
	if err != nil {
		return nil, err
	}
	out := &retrievalv1.ListCorporaResponse{}
	if len(list) > size {
		list = list[:size]
		out.NextPageToken = list[size-1].CorpusID
	}
	for _, c := range list {
		out.Corpora = append(out.Corpora, corpusProto(c))
	}
	return out, nil
}

// GetCorpus returns one corpus of the caller's tenant.
func (s *Server) GetCorpus(ctx context.Context, req *retrievalv1.GetCorpusRequest) (*retrievalv1.GetCorpusResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if err := principal.RequireCorpus(ctx, req.GetCorpusId()); err != nil {
		return nil, err
	}
	c, err := s.store.GetCorpus(ctx, p.TenantID, req.GetCorpusId())
	if errors.Is(err, errCorpusNotFound) {
		return nil, apierr.NotFound("corpus", req.GetCorpusId())
	}
	if err != nil {
		return nil, err
	}
	return &retrievalv1.GetCorpusResponse{Corpus: corpusProto(c)}, nil
}

// UpdateCorpus renames or reconfigures a corpus (creating it with allow_missing).
func (s *Server) UpdateCorpus(ctx context.Context, req *retrievalv1.UpdateCorpusRequest) (*retrievalv1.UpdateCorpusResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	id := req.GetCorpusId()
	if !corpusIDPattern.MatchString(id) {
		return nil, apierr.InvalidArgument("corpus_id", "corpus_id must be 1 to 128 letters, digits, _ . - (starting with a letter or digit)")
	}
	if err := principal.RequireCorpus(ctx, id); err != nil {
		return nil, err
	}
	var patch corpusPatch
	fields := []string{}
	if req.Name != nil {
		if n := utf8.RuneCountInString(req.GetName()); n == 0 || n > maxNameLen {
			return nil, apierr.InvalidArgument("name", fmt.Sprintf("name must be 1 to %d characters", maxNameLen))
		}
		patch.Name = req.Name
		fields = append(fields, "name")
	}
	if req.ProviderConfigJson != nil {
		cfg, err := ParseProviderConfig(req.GetProviderConfigJson().AsMap())
		if err != nil {
			return nil, err
		}
		if err := s.mayUseProvider(ctx, p.TenantID, id, cfg.Provider); err != nil {
			return nil, err
		}
		patch.Config = &cfg
		fields = append(fields, "provider_config_json")
	}
	if len(fields) == 0 && !req.GetAllowMissing() {
		return nil, apierr.InvalidArgument("name", "nothing to update: send name and/or provider_config_json")
	}
	c, created, err := s.store.UpdateCorpus(ctx, p.TenantID, id, patch, req.GetAllowMissing())
	if errors.Is(err, errCorpusNotFound) {
		return nil, apierr.NotFound("corpus", id)
	}
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeCorporaUpdated, Outcome: audit.OutcomeSuccess, ResourceType: "corpus", ResourceID: id,
		Metadata: map[string]any{"created": created, "fields": fields, "provider": c.Config.Provider}})
	return &retrievalv1.UpdateCorpusResponse{Corpus: corpusProto(c), Created: created}, nil
}

// mayUseProvider checks a corpus's new provider against the tenant's plan: the provider's
// own feature, and feature.corpora_patch_provider_config when it changes the provider
// (a new corpus has the local one until then).
func (s *Server) mayUseProvider(ctx context.Context, tenant, corpus, provider string) error {
	if err := s.entitlements.Require(ctx, tenant, entitlements.ForProvider(provider)); err != nil {
		return err
	}
	current := ProviderLocal
	c, err := s.store.GetCorpus(ctx, tenant, corpus)
	switch {
	case err == nil:
		current = c.Config.Provider
	case !errors.Is(err, errCorpusNotFound):
		return err
	}
	if provider == current {
		return nil
	}
	return s.entitlements.Require(ctx, tenant, entitlements.CorporaPatchProviderConfig)
}

func corpusProto(c CorpusRecord) *retrievalv1.Corpus {
	cfg, _ := structpb.NewStruct(c.Config.JSON())
	return &retrievalv1.Corpus{
		CorpusId: c.CorpusID, TenantId: c.TenantID, Name: c.Name, ProviderConfigJson: cfg, Provider: c.Config.Provider,
		CreatedAt: timestamppb.New(c.CreatedAt), UpdatedAt: timestamppb.New(c.UpdatedAt),
	}
}

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
	if err := principal.RequireCorpus(ctx, req.GetCorpusId()); err != nil {
		return nil, err
	}
	var corpus CorpusRecord
	var hits []hit
	err = withFreshOnStale(func(fresh bool) (err error) {
		corpus, hits, err = s.retrieve(ctx, p.TenantID, req.GetCorpusId(), req.GetQuery(), int(req.GetTopK()), fresh)
		return err
	})
	if err != nil {
		return nil, err
	}
	topK := corpus.topK(int(req.GetTopK()))
	out := &retrievalv1.RetrieveResponse{Provider: corpus.Config.Provider}
	if corpus.Config.Provider == ProviderLocal {
		out.Ranking = corpus.Config.Ranking.settings(topK, s.router.Embedder().Name())
	}
	for _, h := range hits {
		md, _ := structpb.NewStruct(h.metadata)
		out.Chunks = append(out.Chunks, &retrievalv1.RetrievedChunk{ChunkId: h.chunkID, DocumentId: h.documentID, Text: h.text,
			Score: h.score, Ordinal: int32(h.ordinal), Metadata: md})
	}
	s.log.DebugContext(ctx, "retrieve", slog.String("corpus_id", corpus.CorpusID), slog.Int("hits", len(out.Chunks)))
	return out, nil
}

// retrieve answers a query from the corpus's provider, with the corpus's cached record
// unless fresh (see Store.searchCorpus).
func (s *Server) retrieve(ctx context.Context, tenant, corpusID, query string, topK int, fresh bool) (CorpusRecord, []hit, error) {
	corpus, err := s.store.searchCorpus(ctx, tenant, corpusID, fresh)
	if errors.Is(err, errCorpusNotFound) {
		return corpus, nil, apierr.NotFound("corpus", corpusID)
	}
	if err != nil {
		return corpus, nil, err
	}
	if err := s.entitlements.Require(ctx, tenant, entitlements.ForProvider(corpus.Config.Provider)); err != nil {
		return corpus, nil, err
	}
	if err := s.rollouts.Check(rollouts.KillRetrieval(corpus.Config.Provider)); err != nil {
		return corpus, nil, err
	}
	hits, err := s.router.retrieve(ctx, tenant, corpus, query, corpus.topK(topK))
	if errors.Is(err, errCorpusNotFound) {
		return corpus, nil, apierr.NotFound("corpus", corpusID)
	}
	return corpus, hits, err
}

// UpsertChunks embeds and stores a document's chunks, replacing its previous ones.
func (s *Server) UpsertChunks(ctx context.Context, req *retrievalv1.UpsertChunksRequest) (*retrievalv1.UpsertChunksResponse, error) {
	counts, _, err := s.upsert(ctx, req.GetTenantId(), req.GetCorpusId(),
		[]*retrievalv1.DocumentChunks{{DocumentId: req.GetDocumentId(), Chunks: req.GetChunks()}}, "", nil)
	if err != nil {
		return nil, err
	}
	return &retrievalv1.UpsertChunksResponse{ChunkCount: counts[0], Embedder: s.router.Embedder().Name()}, nil
}

// UpsertDocuments embeds and stores the chunks of several documents of one corpus in one
// transaction, replacing their previous ones.
func (s *Server) UpsertDocuments(ctx context.Context, req *retrievalv1.UpsertDocumentsRequest) (*retrievalv1.UpsertDocumentsResponse, error) {
	return s.upsertDocuments(ctx, req.GetTenantId(), req.GetCorpusId(), req.GetDocuments(), nil)
}

// UpsertDocumentsWithProgress does what UpsertDocuments does, streaming an event after
// each batch of chunks embedded and the result once they are written.
func (s *Server) UpsertDocumentsWithProgress(req *retrievalv1.UpsertDocumentsWithProgressRequest,
	stream grpc.ServerStreamingServer[retrievalv1.UpsertDocumentsWithProgressResponse]) error {
	res, err := s.upsertDocuments(stream.Context(), req.GetTenantId(), req.GetCorpusId(), req.GetDocuments(), func(embedded, total int) error {
		return stream.Send(&retrievalv1.UpsertDocumentsWithProgressResponse{Event: &retrievalv1.UpsertDocumentsWithProgressResponse_Progress{
			Progress: &retrievalv1.UpsertProgress{ChunksEmbedded: int32(embedded), ChunksTotal: int32(total)}}})
	})
	if err != nil {
		return err
	}
	return stream.Send(&retrievalv1.UpsertDocumentsWithProgressResponse{Event: &retrievalv1.UpsertDocumentsWithProgressResponse_Result{Result: res}})
}

func (s *Server) upsertDocuments(ctx context.Context, tenant, corpus string, docs []*retrievalv1.DocumentChunks,
	progress func(embedded, total int) error) (*retrievalv1.UpsertDocumentsResponse, error) {
	if n := len(docs); n == 0 || n > maxBatchDocuments {
		return nil, apierr.InvalidArgument("documents", fmt.Sprintf("send 1 to %d documents", maxBatchDocuments))
	}
	counts, fenced, err := s.upsert(ctx, tenant, corpus, docs, "documents", progress)
	if err != nil {
		return nil, err
	}
	return &retrievalv1.UpsertDocumentsResponse{ChunkCounts: counts, Embedder: s.router.Embedder().Name(), Fenced: fenced}, nil
}

// DeleteDocumentChunks removes a document's chunks.
func (s *Server) DeleteDocumentChunks(ctx context.Context, req *retrievalv1.DeleteDocumentChunksRequest) (*retrievalv1.DeleteDocumentChunksResponse, error) {
	if err := validateDocumentRef(req.GetTenantId(), req.GetCorpusId(), req.GetDocumentId()); err != nil {
		return nil, err
	}
	if err := principal.RequireCorpus(ctx, req.GetCorpusId()); err != nil {
		return nil, err
	}
	if req.GetVersion() < 0 {
		return nil, apierr.InvalidArgument("version", "version must not be negative (0: no fence)")
	}
	n, err := s.store.deleteDocumentChunks(ctx, req.GetTenantId(), req.GetCorpusId(), req.GetDocumentId(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	return &retrievalv1.DeleteDocumentChunksResponse{Deleted: int32(n)}, nil
}
