package retrieval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	retrievalv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/retrieval/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

// Recorder is where the service sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.retrieval.v1.RetrievalService.
type Server struct {
	retrievalv1.UnimplementedRetrievalServiceServer
	store *Store
	local *localProvider
	cloud Cloud
	audit Recorder
	log   *slog.Logger
}

// Cloud are the cloud backends; a nil one answers its provider's CONFIG_MISSING code.
// Calls to each go through its extcall client (timeout, retries, shared circuit breaker);
// a nil client calls straight through.
type Cloud struct {
	Bedrock      *providers.Bedrock
	Vertex       *providers.Vertex
	BedrockCalls *extcall.Client
	VertexCalls  *extcall.Client
}

// NewServer returns the RetrievalService implementation; embedder embeds chunks and
// queries of local_pgvector corpora.
func NewServer(store *Store, embedder Embedder, cloud Cloud, rec Recorder, log *slog.Logger) *Server {
	return &Server{store: store, local: &localProvider{store: store, embedder: embedder}, cloud: cloud, audit: rec, log: log}
}

var corpusIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

const (
	defaultPageSize = 50
	maxPageSize     = 200
	maxNameLen      = 200
)

// ListCorpora lists the caller's tenant's corpora.
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
	list, err := s.store.ListCorpora(ctx, p.TenantID, req.GetPageToken(), size)
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

func corpusProto(c CorpusRecord) *retrievalv1.Corpus {
	cfg, _ := structpb.NewStruct(c.Config.JSON())
	return &retrievalv1.Corpus{
		CorpusId: c.CorpusID, TenantId: c.TenantID, Name: c.Name, ProviderConfigJson: cfg, Provider: c.Config.Provider,
		CreatedAt: timestamppb.New(c.CreatedAt), UpdatedAt: timestamppb.New(c.UpdatedAt),
	}
}
