package gateway

import (
	"context"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"

	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Self-serve key management: a tenant's admin creates, lists and revokes the tenant's
// keys (the same keys as `nexusrag apikey`), audited as self-serve.

// CreateApiKey creates a key of the caller's tenant and answers its secret, once.
func (s *Server) CreateApiKey(ctx context.Context, req *gatewayv1.CreateApiKeyRequest) (*gatewayv1.CreateApiKeyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(req.GetName()); n == 0 || n > maxKeyNameLen {
		return nil, apierr.InvalidArgument("name", "name must be 1 to 100 characters")
	}
	if _, err := principal.ParseRole(req.GetRole()); err != nil {
		return nil, apierr.InvalidArgument("role", "role must be reader, editor or admin")
	}
	scope, err := principal.NormalizeCorpusIDs(req.GetCorpusIds())
	if err != nil {
		return nil, err
	}
	if err := mayScope(p, scope); err != nil {
		return nil, err
	}
	k, secret, err := s.store.CreateKey(ctx, p.TenantID, req.GetName(), strings.ToLower(req.GetRole()), scope)
	if err != nil {
		return nil, err
	}
	s.cache.Apply(k)
	s.audit.Record(ctx, audit.Event{Type: audit.TypeSelfServeKeyCreated, Outcome: audit.OutcomeSuccess, ResourceType: "api_key", ResourceID: k.ID,
		Metadata: map[string]any{"name": k.Name, "role": k.Role, "corpus_ids": auditScope(k.CorpusIDs)}})
	return &gatewayv1.CreateApiKeyResponse{ApiKey: keyProto(k), Secret: secret}, nil
}

// ListSelfServeApiKeys lists the caller's tenant's keys, without secrets.
func (s *Server) ListSelfServeApiKeys(ctx context.Context, req *gatewayv1.ListSelfServeApiKeysRequest) (*gatewayv1.ListSelfServeApiKeysResponse, error) {
	res, err := s.ListApiKeys(ctx, &gatewayv1.ListApiKeysRequest{IncludeRevoked: req.GetIncludeRevoked()})
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeSelfServeKeysListed, Outcome: audit.OutcomeSuccess, ResourceType: "api_key",
		Metadata: map[string]any{"count": len(res.GetApiKeys()), "include_revoked": req.GetIncludeRevoked()}})
	return &gatewayv1.ListSelfServeApiKeysResponse{ApiKeys: res.GetApiKeys()}, nil
}

// RevokeSelfServeApiKey revokes a key of the caller's tenant; a revoked key is answered
// as it is (idempotent).
func (s *Server) RevokeSelfServeApiKey(ctx context.Context, req *gatewayv1.RevokeSelfServeApiKeyRequest) (*gatewayv1.RevokeSelfServeApiKeyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	k, err := s.revoke(ctx, p.TenantID, req.GetKeyId())
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeSelfServeKeyRevoked, Outcome: audit.OutcomeSuccess, ResourceType: "api_key", ResourceID: k.ID})
	return &gatewayv1.RevokeSelfServeApiKeyResponse{ApiKey: keyProto(k)}, nil
}

// mayScope checks that the caller may give a key the scope ids (empty: every corpus): a
// scoped admin only within its own corpora, so that it cannot mint or widen a key beyond them.
func mayScope(p principal.Principal, ids []string) error {
	if !p.Scoped() {
		return nil
	}
	if len(ids) == 0 {
		return apierr.New(codes.PermissionDenied, apierr.CodeForbidden,
			"this API key is scoped to some corpora: the keys it creates or changes must be scoped within them, not to every corpus")
	}
	for _, id := range ids {
		if !p.AllowsCorpus(id) {
			return principal.CorpusForbidden(id)
		}
	}
	return nil
}
