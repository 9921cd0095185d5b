package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"unicode/utf8"

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
	return &gatewayv1.WhoAmIResponse{TenantId: p.TenantID, KeyId: p.KeyID, Role: principal.RoleName(p.Role)}, nil
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

// UpdateApiKey renames a key of the caller's tenant.
func (s *Server) UpdateApiKey(ctx context.Context, req *gatewayv1.UpdateApiKeyRequest) (*gatewayv1.UpdateApiKeyResponse, error) {
	p, err := principal.Require(ctx)
	if err != nil {
		return nil, err
	}
	if n := utf8.RuneCountInString(req.GetName()); n == 0 || n > maxKeyNameLen {
		return nil, apierr.InvalidArgument("name", "name must be 1 to 100 characters")
	}
	k, err := s.store.RenameKey(ctx, p.TenantID, req.GetKeyId(), req.GetName())
	if errors.Is(err, errKeyNotFound) {
		return nil, apierr.NotFound("api_key", req.GetKeyId())
	}
	if err != nil {
		return nil, err
	}
	s.cache.Apply(k)
	s.audit.Record(ctx, audit.Event{Type: audit.TypeAPIKeyUpdated, Outcome: audit.OutcomeSuccess, ResourceType: "api_key", ResourceID: k.ID,
		Metadata: map[string]any{"name": k.Name}})
	return &gatewayv1.UpdateApiKeyResponse{ApiKey: keyProto(k)}, nil
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
	return &gatewayv1.AuthenticateApiKeyResponse{TenantId: p.TenantID, KeyId: p.KeyID, Role: principal.RoleName(p.Role)}, nil
}

func keyProto(k KeyRecord) *gatewayv1.ApiKey {
	out := &gatewayv1.ApiKey{KeyId: k.ID, TenantId: k.TenantID, Name: k.Name, Role: k.Role, CreatedAt: timestamppb.New(k.CreatedAt)}
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
