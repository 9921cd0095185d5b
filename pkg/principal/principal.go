// Package principal carries the authenticated caller (tenant, API key, role) through a
// request, in its context. It comes from a verified credential only: an API key, or a
// service token that carries it between services (pkg/svcauth); never from metadata.
package principal

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
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

// RequirePlatformAdmin returns the principal of the call when its tenant is one of admins
// (PLATFORM_ADMIN_TENANTS), else FORBIDDEN saying that what is the platform's to do.
func RequirePlatformAdmin(ctx context.Context, admins []string, what string) (Principal, error) {
	p, err := Require(ctx)
	if err != nil {
		return p, err
	}
	if !slices.Contains(admins, p.TenantID) {
		return p, apierr.New(codes.PermissionDenied, apierr.CodeForbidden,
			what+" is the platform's: only admins of the tenants in PLATFORM_ADMIN_TENANTS do it")
	}
	return p, nil
}
