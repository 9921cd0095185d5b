package main_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRateLimitsOverHTTP(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, []string{"RL_ENABLED=true", "RL_READ_KEY=0.2/2", "RL_READ_TENANT=100/100"})
	_, key := p.createKey("t1", "reader")
	_, other := p.createKey("t1", "reader")

	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/auth/whoami", key, "").Status)
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/auth/whoami", key, "").Status, "legacy paths share the class")
	r := p.do(http.MethodGet, "/v1/corpora", key, "")
	require.Equal(t, http.StatusTooManyRequests, r.Status, string(r.Body))
	require.Equal(t, "api_key", r.Header.Get("X-RateLimit-Scope"))
	require.Equal(t, "read", r.Header.Get("X-RateLimit-Route-Class"))
	require.Equal(t, "5", r.Header.Get("Retry-After"))
	require.NotEmpty(t, r.Header.Get("X-RateLimit-Retry-After-Ms"))
	detail := r.JSON["detail"].(map[string]any)
	require.Equal(t, "RATE_LIMITED", detail["code"])
	require.Equal(t, "read", detail["route_class"])

	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/auth/whoami", other, "").Status, "each key has its own bucket")
	require.Equal(t, http.StatusOK, p.do(http.MethodGet, "/v1/health", "", "").Status, "public routes are not limited")
}
