package providers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	discoveryengine "cloud.google.com/go/discoveryengine/apiv1"
	"cloud.google.com/go/discoveryengine/apiv1/discoveryenginepb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Vertex AI Search error codes.
const (
	CodeVertexConfigMissing = "VERTEX_RETRIEVAL_CONFIG_MISSING"
	CodeVertexAuth          = "VERTEX_RETRIEVAL_AUTH_ERROR"
	CodeVertexRetrieval     = "VERTEX_RETRIEVAL_ERROR"
)

// VertexTarget is where a corpus's Vertex AI Search data lives. ResourceID is a data
// store id (searched through its default serving config) or a full resource name
// ("projects/.../dataStores/..." or ".../engines/...", optionally ending in a serving config).
type VertexTarget struct {
	Project, Location, ResourceID string
}

// VertexOptions configure the client.
type VertexOptions struct {
	// Endpoint overrides the regional endpoint (tests, private endpoints).
	Endpoint string
	// ClientOptions are passed to the SDK after the endpoint (tests disable authentication).
	ClientOptions []option.ClientOption
	// Timeout bounds one search.
	Timeout time.Duration
}

// Vertex searches Vertex AI Search (Discovery Engine) with its gRPC SearchService.
type Vertex struct {
	opts    VertexOptions
	mu      sync.Mutex
	clients map[string]*discoveryengine.SearchClient // endpoint -> client
}

// NewVertex returns the provider; clients (and credentials) are created on first use per
// endpoint, so a deployment without Google credentials serves its other corpora.
func NewVertex(opts VertexOptions) *Vertex {
	return &Vertex{opts: opts, clients: map[string]*discoveryengine.SearchClient{}}
}

// Close releases the clients.
func (v *Vertex) Close() error {
	v.mu.Lock()
	defer v.mu.Unlock()
	var errs []error
	for _, c := range v.clients {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Retrieve returns up to topK passages for query.
func (v *Vertex) Retrieve(ctx context.Context, t VertexTarget, query string, topK int) ([]Passage, error) {
	if t.Project == "" || t.Location == "" || t.ResourceID == "" {
		return nil, apierr.New(codes.FailedPrecondition, CodeVertexConfigMissing, "the corpus's gcp_vertex configuration needs project, location and resource_id")
	}
	client, err := v.client(ctx, t.Location)
	if err != nil {
		return nil, err
	}
	if v.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.opts.Timeout)
		defer cancel()
	}
	it := client.Search(ctx, &discoveryenginepb.SearchRequest{
		ServingConfig: ServingConfig(t),
		Query:         query,
		PageSize:      int32(topK),
		ContentSearchSpec: &discoveryenginepb.SearchRequest_ContentSearchSpec{
			SnippetSpec:           &discoveryenginepb.SearchRequest_ContentSearchSpec_SnippetSpec{ReturnSnippet: true},
			ExtractiveContentSpec: &discoveryenginepb.SearchRequest_ContentSearchSpec_ExtractiveContentSpec{MaxExtractiveAnswerCount: 1},
		},
	})
	var out []Passage
	for len(out) < topK {
		r, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, vertexError(ctx, t, err)
		}
		out = append(out, vertexPassage(r, len(out)))
	}
	return out, nil
}

// ServingConfig is the resource searched for a target.
func ServingConfig(t VertexTarget) string {
	name := t.ResourceID
	if !strings.HasPrefix(name, "projects/") {
		name = fmt.Sprintf("projects/%s/locations/%s/collections/default_collection/dataStores/%s", t.Project, t.Location, name)
	}
	if !strings.Contains(name, "/servingConfigs/") {
		name += "/servingConfigs/default_config"
	}
	return name
}

func (v *Vertex) client(ctx context.Context, location string) (*discoveryengine.SearchClient, error) {
	endpoint := v.opts.Endpoint
	if endpoint == "" {
		endpoint = "discoveryengine.googleapis.com:443"
		if location != "global" {
			endpoint = location + "-discoveryengine.googleapis.com:443"
		}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.clients[endpoint]; ok {
		return c, nil
	}
	c, err := discoveryengine.NewSearchClient(ctx, append([]option.ClientOption{option.WithEndpoint(endpoint)}, v.opts.ClientOptions...)...)
	if err != nil {
		// Typically "could not find default credentials": say what to set.
		return nil, apierr.New(codes.FailedPrecondition, CodeVertexConfigMissing,
			"Vertex AI Search client could not start (set GOOGLE_APPLICATION_CREDENTIALS or run with a service account): "+err.Error())
	}
	v.clients[endpoint] = c
	return c, nil
}

func vertexError(ctx context.Context, t VertexTarget, err error) error {
	st, _ := status.FromError(err)
	switch {
	case st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied:
		return apierr.New(codes.FailedPrecondition, CodeVertexAuth, "Vertex AI Search refused the credentials ("+st.Code().String()+")",
			"project", t.Project, "resource_id", t.ResourceID)
	case ctx.Err() != nil:
		return apierr.New(codes.Unavailable, CodeVertexRetrieval, "Vertex AI Search timed out", "resource_id", t.ResourceID)
	}
	return apierr.New(codes.Unavailable, CodeVertexRetrieval, "Vertex AI Search failed ("+st.Code().String()+")",
		"grpc_code", st.Code().String(), "resource_id", t.ResourceID)
}

func vertexPassage(r *discoveryenginepb.SearchResponse_SearchResult, rank int) Passage {
	p := Passage{Metadata: map[string]any{}}
	if c := r.GetChunk(); c != nil && c.GetContent() != "" {
		p.ID, p.Text = c.GetId(), c.GetContent()
		if md := c.GetDocumentMetadata(); md != nil {
			p.DocumentID = md.GetUri()
			if p.DocumentID == "" {
				p.DocumentID = md.GetTitle()
			}
		}
		if c.RelevanceScore != nil {
			p.Score = c.GetRelevanceScore()
		}
	}
	if d := r.GetDocument(); d != nil {
		if p.DocumentID == "" {
			p.DocumentID = d.GetId()
		}
		if p.Text == "" {
			p.Text = derivedText(d.GetDerivedStructData())
		}
		if s := d.GetStructData(); s != nil {
			for k, v := range s.AsMap() {
				p.Metadata[k] = v
			}
		}
	}
	if p.ID == "" {
		p.ID = r.GetId()
	}
	if p.ID == "" {
		p.ID = passageID(p.DocumentID, p.Text)
	}
	if p.Score == 0 {
		p.Score = 1 / float64(rank+1) // the service ranks; without a score, keep its order
	}
	return p
}

// derivedText picks the best text the service derived: an extractive answer, else a snippet.
func derivedText(s *structpb.Struct) string {
	for _, field := range []struct{ list, key string }{{"extractive_answers", "content"}, {"snippets", "snippet"}} {
		for _, v := range s.GetFields()[field.list].GetListValue().GetValues() {
			if t := v.GetStructValue().GetFields()[field.key].GetStringValue(); t != "" {
				return t
			}
		}
	}
	return ""
}
