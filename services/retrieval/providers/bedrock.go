package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockagentruntime/types"
	"github.com/aws/smithy-go"
	"google.golang.org/grpc/codes"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Bedrock error codes.
const (
	CodeAWSConfigMissing = "AWS_CONFIG_MISSING"
	CodeAWSAuth          = "AWS_AUTH_ERROR"
	CodeAWSRetrieval     = "AWS_RETRIEVAL_ERROR"
)

// BedrockTarget is where a corpus's knowledge base lives.
type BedrockTarget struct {
	KnowledgeBaseID, Region string
}

// BedrockOptions configure the client. Zero values use the SDK's defaults.
type BedrockOptions struct {
	// BaseEndpoint overrides the endpoint (VPC endpoints, tests). Empty keeps the SDK's
	// resolution, including AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME.
	BaseEndpoint string
	// MaxAttempts bounds the SDK's own retries of retryable failures.
	MaxAttempts int
	// Timeout bounds one Retrieve call, retries included.
	Timeout time.Duration
}

// Bedrock retrieves from Amazon Bedrock Knowledge Bases with the Agent Runtime Retrieve API.
type Bedrock struct {
	cfg     aws.Config
	loadErr error
	opts    BedrockOptions
	clients sync.Map // region -> *bedrockagentruntime.Client
}

// NewBedrock loads the AWS configuration (default chain: environment, shared files,
// container and instance roles); loadOpts override it, as tests do. A configuration that
// cannot load is reported on every call as AWS_CONFIG_MISSING, not at start-up, so that
// corpora on other providers keep working.
func NewBedrock(ctx context.Context, opts BedrockOptions, loadOpts ...func(*config.LoadOptions) error) *Bedrock {
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	return &Bedrock{cfg: cfg, loadErr: err, opts: opts}
}

// Retrieve returns up to topK passages for query.
func (b *Bedrock) Retrieve(ctx context.Context, t BedrockTarget, query string, topK int) ([]Passage, error) {
	client, err := b.client(ctx, t)
	if err != nil {
		return nil, err
	}
	if b.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.opts.Timeout)
		defer cancel()
	}
	n := int32(topK)
	out, err := client.Retrieve(ctx, &bedrockagentruntime.RetrieveInput{
		KnowledgeBaseId: aws.String(t.KnowledgeBaseID),
		RetrievalQuery:  &types.KnowledgeBaseQuery{Text: aws.String(query)},
		RetrievalConfiguration: &types.KnowledgeBaseRetrievalConfiguration{
			VectorSearchConfiguration: &types.KnowledgeBaseVectorSearchConfiguration{NumberOfResults: &n},
		},
	})
	if err != nil {
		return nil, bedrockError(ctx, t, err)
	}
	passages := make([]Passage, 0, len(out.RetrievalResults))
	for _, r := range out.RetrievalResults {
		passages = append(passages, bedrockPassage(r))
	}
	return passages, nil
}

// client checks the configuration and credentials, then returns the region's client.
func (b *Bedrock) client(ctx context.Context, t BedrockTarget) (*bedrockagentruntime.Client, error) {
	if t.KnowledgeBaseID == "" || t.Region == "" {
		return nil, apierr.New(codes.FailedPrecondition, CodeAWSConfigMissing, "the corpus's aws_bedrock_kb configuration needs knowledge_base_id and region")
	}
	if b.loadErr != nil {
		return nil, apierr.New(codes.FailedPrecondition, CodeAWSConfigMissing, "AWS configuration could not be loaded: "+b.loadErr.Error())
	}
	// A nil provider would send unsigned requests without an error: refuse instead.
	if b.cfg.Credentials == nil {
		return nil, apierr.New(codes.FailedPrecondition, CodeAWSConfigMissing, "no AWS credentials are configured")
	}
	if _, err := b.cfg.Credentials.Retrieve(ctx); err != nil { // cached by the SDK after the first success
		return nil, apierr.New(codes.FailedPrecondition, CodeAWSConfigMissing,
			"no usable AWS credentials (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, or a role)")
	}
	if c, ok := b.clients.Load(t.Region); ok {
		return c.(*bedrockagentruntime.Client), nil
	}
	c := bedrockagentruntime.NewFromConfig(b.cfg, func(o *bedrockagentruntime.Options) {
		o.Region = t.Region
		if b.opts.BaseEndpoint != "" {
			o.BaseEndpoint = aws.String(b.opts.BaseEndpoint)
		}
		if b.opts.MaxAttempts > 0 {
			o.RetryMaxAttempts = b.opts.MaxAttempts
		}
	})
	actual, _ := b.clients.LoadOrStore(t.Region, c)
	return actual.(*bedrockagentruntime.Client), nil
}

// authErrors are the AWS error codes that mean the credentials, not the request, are wrong.
var authErrors = []string{"AccessDeniedException", "UnrecognizedClientException", "ExpiredTokenException",
	"InvalidSignatureException", "IncompleteSignature", "MissingAuthenticationTokenException", "InvalidClientTokenId"}

func bedrockError(ctx context.Context, t BedrockTarget, err error) error {
	var ae smithy.APIError
	var re *awshttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case errors.As(err, &ae) && slices.Contains(authErrors, ae.ErrorCode()), status == http.StatusUnauthorized, status == http.StatusForbidden:
		code := "Forbidden"
		if ae != nil {
			code = ae.ErrorCode()
		}
		return apierr.New(codes.FailedPrecondition, CodeAWSAuth, "AWS refused the credentials for knowledge base "+t.KnowledgeBaseID+" ("+code+")",
			"aws_error", code, "knowledge_base_id", t.KnowledgeBaseID)
	case ctx.Err() != nil:
		return apierr.New(codes.Unavailable, CodeAWSRetrieval, "Bedrock retrieval timed out", "knowledge_base_id", t.KnowledgeBaseID)
	case ae != nil:
		return apierr.New(codes.Unavailable, CodeAWSRetrieval, fmt.Sprintf("Bedrock retrieval failed: %s", ae.ErrorCode()),
			"aws_error", ae.ErrorCode(), "knowledge_base_id", t.KnowledgeBaseID)
	}
	return apierr.New(codes.Unavailable, CodeAWSRetrieval, "Bedrock retrieval failed: the service could not be reached", "knowledge_base_id", t.KnowledgeBaseID)
}

func bedrockPassage(r types.KnowledgeBaseRetrievalResult) Passage {
	p := Passage{Metadata: map[string]any{}}
	if r.Content != nil && r.Content.Text != nil {
		p.Text = *r.Content.Text
	}
	if r.Score != nil {
		p.Score = *r.Score
	}
	for k, v := range r.Metadata {
		var decoded any
		if v != nil && v.UnmarshalSmithyDocument(&decoded) == nil {
			p.Metadata[k] = decoded
		}
	}
	p.DocumentID = bedrockLocation(r.Location)
	if src, ok := p.Metadata["x-amz-bedrock-kb-source-uri"].(string); ok && p.DocumentID == "" {
		p.DocumentID = src
	}
	if id, ok := p.Metadata["x-amz-bedrock-kb-chunk-id"].(string); ok && id != "" {
		p.ID = id
	} else {
		p.ID = passageID(p.DocumentID, p.Text)
	}
	return p
}

func bedrockLocation(l *types.RetrievalResultLocation) string {
	switch {
	case l == nil:
		return ""
	case l.S3Location != nil && l.S3Location.Uri != nil:
		return *l.S3Location.Uri
	case l.WebLocation != nil && l.WebLocation.Url != nil:
		return *l.WebLocation.Url
	case l.ConfluenceLocation != nil && l.ConfluenceLocation.Url != nil:
		return *l.ConfluenceLocation.Url
	case l.SharePointLocation != nil && l.SharePointLocation.Url != nil:
		return *l.SharePointLocation.Url
	case l.SalesforceLocation != nil && l.SalesforceLocation.Url != nil:
		return *l.SalesforceLocation.Url
	case l.CustomDocumentLocation != nil && l.CustomDocumentLocation.Id != nil:
		return *l.CustomDocumentLocation.Id
	case l.KendraDocumentLocation != nil && l.KendraDocumentLocation.Uri != nil:
		return *l.KendraDocumentLocation.Uri
	}
	return ""
}
