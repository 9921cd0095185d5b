package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/nexusrag/nexusrag/pkg/apierr"
)

// TestHTTPErrorMapping reads like the product's error table.
func TestHTTPErrorMapping(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		status  int
		code    string
		message string
	}{
		{"domain code kept", apierr.New(codes.FailedPrecondition, "LEGAL_HOLD_ACTIVE", "held"), 409, "LEGAL_HOLD_ACTIVE", "held"},
		{"field error", apierr.InvalidArgument("name", "too long"), 400, "INVALID_ARGUMENT", "too long"},
		{"not found", apierr.NotFound("api_key", "k1"), 404, "NOT_FOUND", `api_key "k1" not found`},
		{"unauthenticated", apierr.New(codes.Unauthenticated, CodeAuthRevoked, "revoked"), 401, CodeAuthRevoked, "revoked"},
		{"forbidden", apierr.New(codes.PermissionDenied, apierr.CodeForbidden, "no"), 403, "FORBIDDEN", "no"},
		{"rate limited", apierr.New(codes.ResourceExhausted, "RATE_LIMITED", "slow down"), 429, "RATE_LIMITED", "slow down"},
		{"unavailable", apierr.New(codes.Unavailable, apierr.CodeUnavailable, "down"), 503, "SERVICE_UNAVAILABLE", "down"},
		{"busy", apierr.New(codes.Unavailable, "SERVICE_BUSY", "full", "retry_after_s", "1"), 503, "SERVICE_BUSY", "full"},
		{"unsupported media", apierr.New(codes.InvalidArgument, apierr.CodeUnsupportedMediaType, "pdf"), 415, apierr.CodeUnsupportedMediaType, "pdf"},
		{"route not found", apierr.New(codes.NotFound, CodeRouteNotFound, "no route"), 404, CodeRouteNotFound, "no route"},
		{"method not allowed", apierr.New(codes.Unimplemented, CodeMethodNotAllowed, "no"), 405, CodeMethodNotAllowed, "no"},
		{"sunset", apierr.New(codes.FailedPrecondition, CodeEndpointSunset, "gone"), 410, CodeEndpointSunset, "gone"},
		{"too large", apierr.New(codes.InvalidArgument, CodePayloadTooLarge, "big"), 413, CodePayloadTooLarge, "big"},
		{"a backend refused the gateway's own token", apierr.New(codes.Unauthenticated, apierr.CodeServiceTokenInvalid, "service token refused: key id abc unknown"), 502,
			apierr.CodeServiceTokenInvalid, "a backend service refused the gateway's service credential; the operator must check SERVICE_AUTH_KEYS_FILE"},
		{"bare status from a library keeps client text", status.Error(codes.InvalidArgument, "bad limit"), 400, "INVALID_ARGUMENT", "bad limit"},
		{"bare internal hides text", status.Error(codes.Internal, "pq: password authentication failed"), 500, "INTERNAL", "internal error"},
		{"plain error hides text", errors.New("dial tcp 10.0.0.1: refused"), 500, "INTERNAL", "internal error"},
		{"deadline", status.Error(codes.DeadlineExceeded, "slow query on 10.1.2.3"), 504, "DEADLINE_EXCEEDED", "the request took too long"},
		{"unavailable transport", status.Error(codes.Unavailable, "connection refused 10.1.2.3:9000"), 503, "SERVICE_UNAVAILABLE", "a backend service is unavailable; retry shortly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, e := httpError(tt.err)
			require.Equal(t, tt.status, s)
			require.Equal(t, tt.code, e.Code)
			require.Equal(t, tt.message, e.Message)
		})
	}
	for c := codes.OK + 1; c <= codes.Unauthenticated; c++ {
		s, _ := httpError(status.Error(c, "x"))
		require.GreaterOrEqual(t, s, http.StatusBadRequest, c.String())
	}
}

func TestBusyErrorsCarryRetryAfter(t *testing.T) {
	res := httptest.NewRecorder()
	writeError(res, httptest.NewRequest(http.MethodPost, "/v1/run", nil), apierr.New(codes.Unavailable, "SERVICE_BUSY", "full", "retry_after_s", "1"))
	require.Equal(t, http.StatusServiceUnavailable, res.Code)
	require.Equal(t, "1", res.Header().Get("Retry-After"))
}
