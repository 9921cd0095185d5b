// Package principal carries the authenticated caller (tenant, API key, role) through a
// request: in the context inside a process, and in gRPC metadata between services.
// Only the gateway sets it from credentials; services trust it on the internal port.
package principal

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// Metadata keys. The gateway never forwards client headers under these names.
const (
	MDTenant = "x-nexusrag-tenant-id"
	MDKeyID  = "x-nexusrag-key-id"
	MDRole   = "x-nexusrag-role"
)

// Principal is an authenticated caller.
type Principal struct {
	TenantID string
	// KeyID is empty under AUTH_DEV_BYPASS.
	KeyID string
	Role  apiv1.Role
}

// Allows reports whether the principal holds at least role min.
func (p Principal) Allows(min apiv1.Role) bool {
	return p.Role >= min && min != apiv1.Role_ROLE_UNSPECIFIED
}

type ctxKey struct{}

// With returns ctx carrying p.
func With(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// From returns the principal in ctx.
func From(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// RoleName is the lower-case API name of a role: reader, editor, admin.
func RoleName(r apiv1.Role) string {
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// ParseRole parses reader, editor or admin.
func ParseRole(s string) (apiv1.Role, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "reader":
		return apiv1.Role_ROLE_READER, nil
	case "editor":
		return apiv1.Role_ROLE_EDITOR, nil
	case "admin":
		return apiv1.Role_ROLE_ADMIN, nil
	}
	return apiv1.Role_ROLE_UNSPECIFIED, fmt.Errorf("unknown role %q (want reader, editor or admin)", s)
}

// AppendOutgoing copies the principal in ctx, if any, into outgoing gRPC metadata.
func AppendOutgoing(ctx context.Context) context.Context {
	p, ok := From(ctx)
	if !ok {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, MDTenant, p.TenantID, MDKeyID, p.KeyID, MDRole, RoleName(p.Role))
}

// FromIncoming reads a principal from incoming gRPC metadata. ok is false when there is
// none; err is set when one is present but malformed.
func FromIncoming(ctx context.Context) (p Principal, ok bool, err error) {
	tenant := first(ctx, MDTenant)
	if tenant == "" {
		return Principal{}, false, nil
	}
	role, err := ParseRole(first(ctx, MDRole))
	if err != nil {
		return Principal{}, false, err
	}
	return Principal{TenantID: tenant, KeyID: first(ctx, MDKeyID), Role: role}, true, nil
}

// first reads one metadata value without copying the whole incoming metadata.
func first(ctx context.Context, k string) string {
	if v := metadata.ValueFromIncomingContext(ctx, k); len(v) > 0 {
		return v[0]
	}
	return ""
}

// Require returns the principal of the call, or an UNAUTHENTICATED error. The grpcx
// interceptor already refuses calls without one to methods that need a role, so a miss
// in a handler is a wiring bug reported as such rather than a panic.
func Require(ctx context.Context) (Principal, error) {
	p, ok := From(ctx)
	if !ok {
		return Principal{}, apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "no authenticated principal on the call")
	}
	return p, nil
}
