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

// ForbiddenFunc is told about each call refused for a too-low role (the audit hook).
type ForbiddenFunc func(ctx context.Context, method string, p principal.Principal, need apiv1.Role)

// authorizer enforces the nexusrag.api.v1.access option of each method.
type authorizer struct {
	onForbidden ForbiddenFunc
	cache       sync.Map // full method -> *apiv1.Access (nil when absent)
}

// infrastructure services carry no access option and need no principal.
var openServices = []string{"/grpc.health.v1.", "/grpc.reflection."}

func (a *authorizer) authorize(ctx context.Context, fullMethod string) error {
	for _, prefix := range openServices {
		if strings.HasPrefix(fullMethod, prefix) {
			return nil
		}
	}
	acc := a.access(fullMethod)
	if acc == nil {
		return apierr.New(codes.PermissionDenied, apierr.CodeForbidden, "method has no access policy", "method", fullMethod)
	}
	if acc.GetInternal() {
		return nil
	}
	p, ok := principal.From(ctx)
	if !ok {
		return apierr.New(codes.Unauthenticated, apierr.CodeUnauthenticated, "no authenticated principal on the call")
	}
	if !p.Allows(acc.GetMinRole()) {
		if a.onForbidden != nil {
			a.onForbidden(ctx, fullMethod, p, acc.GetMinRole())
		}
		return apierr.New(codes.PermissionDenied, apierr.CodeForbidden,
			"role "+principal.RoleName(p.Role)+" may not do this; it needs "+principal.RoleName(acc.GetMinRole())+" or higher",
			"required_role", principal.RoleName(acc.GetMinRole()), "role", principal.RoleName(p.Role))
	}
	return nil
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
