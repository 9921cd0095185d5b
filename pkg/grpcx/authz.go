package grpcx

import (
	"context"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	apiv1 "github.com/nexusrag/nexusrag/gen/go/nexusrag/api/v1"
	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
)

// ForbiddenFunc is told about each call refused for a too-low role or a missing feature
// (the audit hook). need is the role the method requires, "service" for an internal
// method, or the feature key the tenant's plan lacks.
type ForbiddenFunc func(ctx context.Context, method string, p principal.Principal, need string)

// NeedService is what an internal method requires: a service token.
const NeedService = "service"

// Entitlements answers whether a tenant's plan has a feature (pkg/entitlements).
type Entitlements interface {
	Require(ctx context.Context, tenant, feature string) error
}

// authorizer enforces the nexusrag.api.v1.access option of each method.
type authorizer struct {
	onForbidden  ForbiddenFunc
	entitlements Entitlements // nil: features are not checked
	cache        sync.Map     // full method -> *apiv1.Access (nil when absent)
}

// Health answers anyone: orchestrators probe it without credentials.
const healthPrefix = "/grpc.health.v1."

// Reflection answers any authenticated caller: operators list and describe services.
const reflectionPrefix = "/grpc.reflection."

func isHealth(fullMethod string) bool { return strings.HasPrefix(fullMethod, healthPrefix) }

// isInfrastructure reports grpc-go's own services, whose errors keep their codes.
func isInfrastructure(fullMethod string) bool {
	return isHealth(fullMethod) || strings.HasPrefix(fullMethod, reflectionPrefix)
}

// authorize decides an authenticated call: internal methods take service tokens only;
// the others need a principal (from an API key, or carried by a service token) holding
// the method's least role.
func (a *authorizer) authorize(ctx context.Context, fullMethod string, caller callerKind) error {
	if strings.HasPrefix(fullMethod, reflectionPrefix) {
		return nil
	}
	acc := a.access(fullMethod)
	if acc == nil {
		return apierr.New(codes.PermissionDenied, apierr.CodeForbidden, "method has no access policy", "method", fullMethod)
	}
	p, hasPrincipal := principal.From(ctx)
	if acc.GetInternal() {
		if caller == callerService {
			return nil
		}
		a.forbidden(ctx, fullMethod, p, NeedService)
		return apierr.New(codes.PermissionDenied, apierr.CodeForbidden,
			"this method is internal: only NexusRAG services may call it, never with an API key", "required", NeedService)
	}
	if !hasPrincipal {
		return apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "the call carries no end-user principal, and this method acts for one")
	}
	if !p.Allows(acc.GetMinRole()) {
		need := principal.RoleName(acc.GetMinRole())
		a.forbidden(ctx, fullMethod, p, need)
		return apierr.New(codes.PermissionDenied, apierr.CodeForbidden,
			"role "+principal.RoleName(p.Role)+" may not do this; it needs "+need+" or higher",
			"required_role", need, "role", principal.RoleName(p.Role))
	}
	if f := acc.GetFeature(); f != "" && a.entitlements != nil {
		if err := a.entitlements.Require(ctx, p.TenantID, f); err != nil {
			if e, ok := apierr.From(err); ok && e.GRPCCode == codes.PermissionDenied {
				a.forbidden(ctx, fullMethod, p, f)
			}
			return err
		}
	}
	return nil
}

func (a *authorizer) forbidden(ctx context.Context, method string, p principal.Principal, need string) {
	if a.onForbidden != nil {
		a.onForbidden(ctx, method, p, need)
	}
}

// access returns the access option of "/pkg.Service/Method", or nil.
func (a *authorizer) access(fullMethod string) *apiv1.Access {
	if v, ok := a.cache.Load(fullMethod); ok {
		return v.(*apiv1.Access)
	}
	acc := MethodAccess(fullMethod)
	a.cache.Store(fullMethod, acc)
	return acc
}

// MethodAccess reads the access option of a registered method ("/pkg.Service/Method"), or nil.
func MethodAccess(fullMethod string) *apiv1.Access {
	name := strings.Replace(strings.TrimPrefix(fullMethod, "/"), "/", ".", 1)
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil
	}
	md, ok := d.(protoreflect.MethodDescriptor)
	if !ok || !proto.HasExtension(md.Options(), apiv1.E_Access) {
		return nil
	}
	return proto.GetExtension(md.Options(), apiv1.E_Access).(*apiv1.Access)
}
