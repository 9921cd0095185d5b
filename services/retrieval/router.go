package retrieval

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/extcall"
	"github.com/nexusrag/nexusrag/services/retrieval/providers"
)

// Provider answers queries for the corpora of one backend: the local index, Bedrock
// Knowledge Bases, Vertex AI Search.
type Provider interface {
	retrieve(ctx context.Context, tenant string, corpus CorpusRecord, query string, topK int) ([]hit, error)
}

// Router sends each query to its corpus's provider, under the external-call policy of
// that provider (timeout, retries, circuit breaker) when it is a cloud one.
type Router struct {
	local  *LocalIndex
	vertex *providers.Vertex
	routes map[string]route
}

type route struct {
	provider Provider
	calls    *extcall.Client // nil: called directly
	// missing is answered when the deployment has no such backend.
	missing *apierr.Error
}

// NewRouter routes local_pgvector corpora to the local index and the cloud ones to
// bedrock and vertex (nil: not configured here, answered with the provider's
// CONFIG_MISSING code), each cloud call under its extcall client.
func NewRouter(local *LocalIndex, bedrock *providers.Bedrock, bedrockCalls *extcall.Client, vertex *providers.Vertex, vertexCalls *extcall.Client) *Router {
	r := &Router{local: local, routes: map[string]route{
		ProviderLocal: {provider: local},
		ProviderBedrock: {missing: apierr.New(codes.FailedPrecondition, providers.CodeAWSConfigMissing,
			"Bedrock retrieval is not configured in this deployment")},
		ProviderVertex: {missing: apierr.New(codes.FailedPrecondition, providers.CodeVertexConfigMissing,
			"Vertex AI Search retrieval is not configured in this deployment")},
	}}
	if bedrock != nil {
		r.routes[ProviderBedrock] = route{provider: bedrockProvider{bedrock}, calls: bedrockCalls}
	}
	if vertex != nil {
		r.vertex = vertex
		r.routes[ProviderVertex] = route{provider: vertexProvider{vertex}, calls: vertexCalls}
	}
	return r
}

// Close releases the cloud clients.
func (r *Router) Close() error {
	if r.vertex == nil {
		return nil
	}
	return r.vertex.Close()
}

// Embedder is the local index's: chunks stored here are embedded with it.
func (r *Router) Embedder() Embedder { return r.local.embedder }

// retrieve answers query from the corpus's provider.
func (r *Router) retrieve(ctx context.Context, tenant string, corpus CorpusRecord, query string, topK int) ([]hit, error) {
	rt, ok := r.routes[corpus.Config.Provider]
	switch {
	case !ok: // ParseProviderConfig admits only the providers above
		return nil, fmt.Errorf("corpus %s: unrouted provider %q", corpus.CorpusID, corpus.Config.Provider)
	case rt.provider == nil:
		return nil, rt.missing
	}
	var hits []hit
	err := rt.calls.Do(ctx, true, func(ctx context.Context) (err error) {
		hits, err = rt.provider.retrieve(ctx, tenant, corpus, query, topK)
		return err
	})
	return hits, err
}

// bedrockProvider searches a corpus's Bedrock knowledge base.
type bedrockProvider struct{ b *providers.Bedrock }

func (p bedrockProvider) retrieve(ctx context.Context, _ string, corpus CorpusRecord, query string, topK int) ([]hit, error) {
	c := corpus.Config
	passages, err := p.b.Retrieve(ctx, providers.BedrockTarget{KnowledgeBaseID: c.KnowledgeBaseID, Region: c.Region}, query, topK)
	return passageHits(passages), err
}

// vertexProvider searches a corpus's Vertex AI Search data store or engine.
type vertexProvider struct{ v *providers.Vertex }

func (p vertexProvider) retrieve(ctx context.Context, _ string, corpus CorpusRecord, query string, topK int) ([]hit, error) {
	c := corpus.Config
	passages, err := p.v.Retrieve(ctx, providers.VertexTarget{Project: c.Project, Location: c.Location, ResourceID: c.ResourceID}, query, topK)
	return passageHits(passages), err
}

func passageHits(ps []providers.Passage) []hit {
	out := make([]hit, len(ps))
	for i, p := range ps {
		out[i] = hit{chunkID: p.ID, documentID: p.DocumentID, text: p.Text, ordinal: i, metadata: p.Metadata, score: p.Score}
	}
	return out
}
