// Package principal carries the authenticated caller (tenant, API key, role, corpus scope)
// through a request, in its context. It comes from a verified credential only: an API key, or a
// service token that carries it between services (pkg/svcauth); never from metadata.
package principal

import (
	"context"
	"fmt"
	"regexp"
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
	// CorpusIDs scopes the caller to these corpora (sorted, no duplicates); empty means
	// every corpus of the tenant. It comes from the API key and travels in service tokens.
	CorpusIDs []string
}

// AllowsCorpus reports whether the principal may touch corpus id.
func (p Principal) AllowsCorpus(id string) bool {
	return len(p.CorpusIDs) == 0 || slices.Contains(p.CorpusIDs, id)
}

// Scoped reports whether the principal is limited to some corpora.
func (p Principal) Scoped() bool { return len(p.CorpusIDs) > 0 }

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

// CodeCorpusScopeInvalid is the error code of a corpus_ids list that cannot scope a key.
const CodeCorpusScopeInvalid = "CORPUS_SCOPE_INVALID"

// MaxCorpusIDs bounds a key's corpus scope.
const MaxCorpusIDs = 100

// corpusIDPattern is the shape of a corpus id (the retrieval service's rule).
var corpusIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// NormalizeCorpusIDs validates a key's corpus scope (corpus ids, at most MaxCorpusIDs,
// no duplicates) and returns it sorted; nil or empty means unrestricted. The error is an
// INVALID_ARGUMENT with code CORPUS_SCOPE_INVALID naming the offending corpus.
func NormalizeCorpusIDs(ids []string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	if len(ids) > MaxCorpusIDs {
		return nil, apierr.New(codes.InvalidArgument, CodeCorpusScopeInvalid,
			fmt.Sprintf("corpus_ids holds %d corpora; a key may be scoped to at most %d", len(ids), MaxCorpusIDs),
			"field", "corpus_ids")
	}
	out := slices.Clone(ids)
	for _, id := range out {
		if !corpusIDPattern.MatchString(id) {
			return nil, apierr.New(codes.InvalidArgument, CodeCorpusScopeInvalid,
				fmt.Sprintf("corpus_ids: %q is not a corpus id (1-128 of A-Z a-z 0-9 _ . -, starting with a letter or digit)", id),
				"field", "corpus_ids", "corpus_id", id)
		}
	}
	slices.Sort(out)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			return nil, apierr.New(codes.InvalidArgument, CodeCorpusScopeInvalid,
				fmt.Sprintf("corpus_ids lists %q twice", out[i]), "field", "corpus_ids", "corpus_id", out[i])
		}
	}
	return out, nil
}

// RequireCorpus returns the principal of the call when it may touch corpus id, else
// FORBIDDEN naming the corpus. A call without a principal (a service acting for itself)
// is not scoped and passes.
func RequireCorpus(ctx context.Context, id string) error {
	p, ok := From(ctx)
	if !ok || p.AllowsCorpus(id) {
		return nil
	}
	return CorpusForbidden(id)
}

// CorpusForbidden is the error of a scoped key reaching beyond its corpora.
func CorpusForbidden(id string) error {
	return apierr.New(codes.PermissionDenied, apierr.CodeForbidden,
		fmt.Sprintf("this API key is scoped to other corpora: it may not touch corpus %s", id), "corpus_id", id)
}
