package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	gatewayv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/gateway/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/audit"
	"github.com/nexusrag/nexusrag/pkg/maintenance"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// Recorder is where the gateway sends audit events (an *audit.Recorder).
type Recorder interface {
	Record(ctx context.Context, e audit.Event)
}

// Server implements nexusrag.gateway.v1.AuthService.
type Server struct {
	gatewayv1.UnimplementedAuthServiceServer
	maintenance *maintenance.Runner // nil: RunGatewayMaintenance answers unavailable
	store       *Store
	cache       *KeyCache
	audit       Recorder
}

// NewServer returns the AuthService implementation.
func NewServer(store *Store, cache *KeyCache, rec Recorder) *Server {
	return &Server{store: store, cache: cache, audit: rec}
}

const maxKeyNameLen = 100

// WhoAmI returns the caller.
func (s *Server) WhoAmI(ctx context.Context, _ *gatewayv1.WhoAmIRequest) (*gatewayv1.WhoAmIResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	return &gatewayv1.WhoAmIResponse{TenantId: p.TenantID, KeyId: p.KeyID, Role: principal.RoleName(p.Role), CorpusIds: p.CorpusIDs}, nil
}

// ListApiKeys lists the caller's tenant's keys.
func (s *Server) ListApiKeys(ctx context.Context, req *gatewayv1.ListApiKeysRequest) (*gatewayv1.ListApiKeysResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	keys, err := s.store.ListKeys(ctx, p.TenantID, req.GetIncludeRevoked())
	if err != nil {
		return nil, err
	}
	out := &gatewayv1.ListApiKeysResponse{ApiKeys: make([]*gatewayv1.ApiKey, 0, len(keys))}
	for _, k := range keys {
		out.ApiKeys = append(out.ApiKeys, keyProto(k))
	}
	return out, nil
}

// UpdateApiKey renames a key of the caller's tenant and/or changes its corpus scope.
func (s *Server) UpdateApiKey(ctx context.Context, req *gatewayv1.UpdateApiKeyRequest) (*gatewayv1.UpdateApiKeyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	change, err := keyChange(req)
	if err != nil {
		return nil, err
	}
	if change.SetScope {
		if err := mayScope(p, change.CorpusIDs); err != nil {
			return nil, err
		}
	}
	k, err := s.store.UpdateKey(ctx, p.TenantID, req.GetKeyId(), change)
	if errors.Is(err, errKeyNotFound) {
		return nil, apierr.NotFound("api_key", req.GetKeyId())
	}
	if err != nil {
		return nil, err
	}
	s.cache.Apply(k)
	s.audit.Record(ctx, audit.Event{Type: audit.TypeAPIKeyUpdated, Outcome: audit.OutcomeSuccess, ResourceType: "api_key", ResourceID: k.ID,
		Metadata: map[string]any{"name": k.Name, "corpus_ids": auditScope(k.CorpusIDs), "scope_changed": change.SetScope}})
	return &gatewayv1.UpdateApiKeyResponse{ApiKey: keyProto(k)}, nil
}

// keyChange validates an update: a name, a new scope, or the scope cleared.
func keyChange(req *gatewayv1.UpdateApiKeyRequest) (KeyChange, error) {
	var c KeyChange
	if req.Name != nil {
		if n := utf8.RuneCountInString(req.GetName()); n == 0 || n > maxKeyNameLen {
			return c, apierr.InvalidArgument("name", "name must be 1 to 100 characters")
		}
		c.Name = req.Name
	}
	switch {
	case req.GetClearCorpusIds() && len(req.GetCorpusIds()) > 0:
		return c, apierr.New(codes.InvalidArgument, principal.CodeCorpusScopeInvalid,
			"send corpus_ids or clear_corpus_ids, not both", "field", "corpus_ids")
	case req.GetClearCorpusIds():
		c.SetScope, c.CorpusIDs = true, []string{}
	case len(req.GetCorpusIds()) > 0:
		scope, err := principal.NormalizeCorpusIDs(req.GetCorpusIds())
		if err != nil {
			return c, err
		}
		c.SetScope, c.CorpusIDs = true, scope
	}
	if c.Name == nil && !c.SetScope {
		return c, apierr.InvalidArgument("name", "send a name, corpus_ids or clear_corpus_ids")
	}
	return c, nil
}

// auditScope is a key's scope as audited: the corpus ids, or "all".
func auditScope(ids []string) any {
	if len(ids) == 0 {
		return "all"
	}
	return ids
}

// RevokeApiKey revokes a key of the caller's tenant. Revoking twice is not an error.
func (s *Server) RevokeApiKey(ctx context.Context, req *gatewayv1.RevokeApiKeyRequest) (*gatewayv1.RevokeApiKeyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	k, err := s.revoke(ctx, p.TenantID, req.GetKeyId())
	if err != nil {
		return nil, err
	}
	s.audit.Record(ctx, audit.Event{Type: audit.TypeAPIKeyRevoked, Outcome: audit.OutcomeSuccess, ResourceType: "api_key", ResourceID: k.ID})
	return &gatewayv1.RevokeApiKeyResponse{ApiKey: keyProto(k)}, nil
}

// revoke revokes a key of tenant (a revoked one stays as it is) and tells the cache.
func (s *Server) revoke(ctx context.Context, tenant, keyID string) (KeyRecord, error) {
	k, err := s.store.RevokeKey(ctx, tenant, keyID)
	if errors.Is(err, errKeyNotFound) {
		return KeyRecord{}, apierr.NotFound("api_key", keyID)
	}
	if err != nil {
		return KeyRecord{}, err
	}
	s.cache.Apply(k)
	return k, nil
}

// AuthenticateApiKey resolves an API key for another process's gRPC port.
func (s *Server) AuthenticateApiKey(ctx context.Context, req *gatewayv1.AuthenticateApiKeyRequest) (*gatewayv1.AuthenticateApiKeyResponse, error) {
	if len(req.GetKeyId()) != keyIDLen || !isBase32Lower(req.GetKeyId()) || len(req.GetSecretSha256()) != sha256.Size {
		return nil, invalidKey()
	}
	p, err := s.cache.AuthenticateHash(ctx, req.GetKeyId(), req.GetSecretSha256())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.AuthenticateApiKeyResponse{TenantId: p.TenantID, KeyId: p.KeyID, Role: principal.RoleName(p.Role), CorpusIds: p.CorpusIDs}, nil
}

func keyProto(k KeyRecord) *gatewayv1.ApiKey {
	out := &gatewayv1.ApiKey{KeyId: k.ID, TenantId: k.TenantID, Name: k.Name, Role: k.Role, CreatedAt: timestamppb.New(k.CreatedAt), CorpusIds: k.CorpusIDs}
	if k.RevokedAt != nil {
		out.RevokedAt = timestamppb.New(*k.RevokedAt)
	}
	return out
}

// WithMaintenance sets the runner of this service's maintenance tasks.
func (s *Server) WithMaintenance(r *maintenance.Runner) *Server {
	s.maintenance = r
	return s
}

// RunGatewayMaintenance runs one of this service's maintenance tasks now (internal: ops).
func (s *Server) RunGatewayMaintenance(ctx context.Context, req *gatewayv1.RunGatewayMaintenanceRequest) (*gatewayv1.RunGatewayMaintenanceResponse, error) {
	run, err := s.maintenance.OnDemand(ctx, req.GetTask())
	if err != nil {
		return nil, err
	}
	return &gatewayv1.RunGatewayMaintenanceResponse{Run: run}, nil
}
