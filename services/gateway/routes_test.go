package gateway

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRouteTable(t *testing.T) {
	rt := newRouteTable([]routeInfo{
		{Method: http.MethodGet, Path: "/v1/api-keys"},
		{Method: http.MethodPatch, Path: "/v1/api-keys/{key_id}"},
		{Method: http.MethodDelete, Path: "/v1/api-keys/{key_id}"},
		{Method: http.MethodGet, Path: "/v1/health", Public: true},
	})
	tests := []struct {
		method, path string
		want         string
		public       bool
		allowed      []string
	}{
		{method: "GET", path: "/v1/api-keys", want: "/v1/api-keys"},
		{method: "GET", path: "/v1/api-keys/", want: "/v1/api-keys"},
		{method: "PATCH", path: "/v1/api-keys/abc", want: "/v1/api-keys/{key_id}"},
		{method: "DELETE", path: "/v1/api-keys/abc", want: "/v1/api-keys/{key_id}"},
		{method: "HEAD", path: "/v1/health", want: "/v1/health", public: true},
		{method: "GET", path: "/v1/api-keys/abc", allowed: []string{"PATCH", "DELETE"}},
		{method: "POST", path: "/v1/health", allowed: []string{"GET"}},
		{method: "GET", path: "/v1/api-keys/abc/extra"},
		{method: "GET", path: "/v1/api-keys//"},
		{method: "GET", path: "/v2/api-keys"},
		{method: "GET", path: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			r, allowed := rt.match(tt.method, tt.path)
			if tt.want == "" {
				require.Nil(t, r)
				require.Equal(t, tt.allowed, allowed)
				return
			}
			require.NotNil(t, r)
			require.Equal(t, tt.want, r.template)
			require.Equal(t, tt.public, r.public)
		})
	}
}
