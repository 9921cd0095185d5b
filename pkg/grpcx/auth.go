package grpcx

import (
	"context"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/nexusrag/nexusrag/pkg/apierr"
	"github.com/nexusrag/nexusrag/pkg/principal"
	"github.com/nexusrag/nexusrag/pkg/requestid"
)

// The one piece of metadata a call proves its caller with:
//
//	authorization: Bearer <api key>        an operator (grpcurl), with the key's tenant and role
//	authorization: Bearer <service token>  a NexusRAG service (svcauth), for itself or an end user
//
// Anything else in metadata (tenant, role, key id) is never read.
const mdAuthorization = "authorization"

// apiKeyPrefix starts every NexusRAG API key; any other bearer value is a service token.
const apiKeyPrefix = "nrk_"

// KeyAuthenticator resolves an operator's API key to its principal, or fails with an
// apierr code AUTH_INVALID, AUTH_REVOKED or AUTH_UNAVAILABLE.
type KeyAuthenticator interface {
	Authenticate(ctx context.Context, apiKey string) (principal.Principal, error)
}

// callerKind says how a call proved who made it.
type callerKind int

const (
	callerService  callerKind = iota + 1 // a verified service token
	callerOperator                       // a valid API key
)

// ParseBearer returns the credential of an authorization value ("Bearer <credential>").
func ParseBearer(v string) (string, error) {
	scheme, cred, ok := strings.Cut(v, " ")
	cred = strings.TrimSpace(cred)
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" || strings.ContainsAny(cred, " \t\r\n") {
		return "", errors.New(`the authorization metadata must be "Bearer <api key or service token>"`)
	}
	return cred, nil
}

// authenticate establishes who made the call from its authorization metadata: an API
// key (through keys) or a service token (verified against the keyring, for the service
// the method belongs to). It returns ctx with the request id and, when the call acts for
// an end user, the principal.
func (ic *interceptors) authenticate(ctx context.Context, method string) (context.Context, callerKind, error) {
	vals := metadata.ValueFromIncomingContext(ctx, mdAuthorization)
	switch len(vals) {
	case 0:
		return requestid.FromIncoming(ctx), 0, apierr.New(codes.Unauthenticated, apierr.CodeAuthMissing,
			`missing credentials: send the metadata "authorization: Bearer <api key>"`)
	case 1:
	default:
		return requestid.FromIncoming(ctx), 0, apierr.New(codes.Unauthenticated, apierr.CodeAuthInvalid, "more than one authorization value")
	}
	cred, err := ParseBearer(vals[0])
	if err != nil {
		return requestid.FromIncoming(ctx), 0, apierr.New(codes.Unauthenticated, apierr.CodeAuthInvalid, err.Error())
	}
	if strings.HasPrefix(cred, apiKeyPrefix) {
		ctx = requestid.FromIncoming(ctx)
		if ic.apiKeys == nil {
			return ctx, 0, apierr.New(codes.Unauthenticated, apierr.CodeAuthUnavailable,
				"this process does not accept API keys: it runs no gateway and GATEWAY_GRPC_ADDR is not set")
		}
		p, err := ic.apiKeys.Authenticate(ctx, cred)
		if err != nil {
			return ctx, 0, err
		}
		return principal.With(ctx, p), callerOperator, nil
	}
	claims, err := ic.keys.Verify(cred, Audience(method), time.Now())
	if err != nil {
		// A process with the wrong keys, or someone trying: the operator must hear of it.
		ctx = requestid.FromIncoming(ctx)
		from := ""
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			from = p.Addr.String()
		}
		ic.log.WarnContext(ctx, "service token refused", "method", method, "reason", err.Error(), "peer", from)
		return ctx, 0, apierr.New(codes.Unauthenticated, apierr.CodeServiceTokenInvalid, "service token refused: "+err.Error())
	}
	ctx = requestid.FromIncoming(ctx)
	if claims.Principal != nil {
		ctx = principal.With(ctx, *claims.Principal)
	}
	return ctx, callerService, nil
}

// Audience is the service a method belongs to, which its tokens must name: the <area>
// of "/nexusrag.<area>.v1.Service/Method" (retrieval, governance, ...), else the gRPC
// service's full name (grpc.reflection.v1.ServerReflection).
func Audience(fullMethod string) string {
	svc, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	if rest, ok := strings.CutPrefix(svc, "nexusrag."); ok {
		if area, _, ok := strings.Cut(rest, "."); ok {
			return area
		}
	}
	return svc
}
