// Package requestid carries the request id of a call: generated or accepted at the
// gateway, echoed in X-Request-Id, sent to services as x-request-id metadata and logged.
package requestid

import (
	"context"

	"github.com/google/uuid"
	"google.golang.org/grpc/metadata"
)

// Header is the HTTP header; MD the gRPC metadata key.
const (
	Header = "X-Request-Id"
	MD     = "x-request-id"
	maxLen = 128
)

type ctxKey struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// From returns the request id in ctx, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// New returns a fresh, time-ordered id.
func New() string { return uuid.Must(uuid.NewV7()).String() }

// Accept returns a client-supplied id when it is safe to echo and log (printable ASCII
// without spaces or quotes, at most 128 bytes); otherwise a fresh one.
func Accept(candidate string) string {
	if candidate == "" || len(candidate) > maxLen {
		return New()
	}
	for i := 0; i < len(candidate); i++ {
		c := candidate[i]
		if c <= ' ' || c > '~' || c == '"' || c == '\\' {
			return New()
		}
	}
	return candidate
}

// FromIncoming returns ctx carrying the id of the incoming gRPC metadata, or a new one.
func FromIncoming(ctx context.Context) context.Context {
	if v := metadata.ValueFromIncomingContext(ctx, MD); len(v) > 0 {
		return With(ctx, Accept(v[0]))
	}
	return With(ctx, New())
}
