package apidocs_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/gen/openapi"
	"github.com/nexusrag/nexusrag/services/gateway/apidocs"
)

func build(t *testing.T) []byte {
	t.Helper()
	roles := map[string]string{"AuthService_WhoAmI": "reader", "AuditService_ListAuditEvents": "admin"}
	doc, err := apidocs.Build(openapi.Spec, []apidocs.Route{
		{Method: "GET", Path: "/v1/health", Public: true, Summary: "Health", ResponseSchema: map[string]any{"type": "object"}},
		{Method: "POST", Path: "/v1/run", MinRole: "reader", Summary: "Run <script>alert(1)</script>", ResponseContentTypes: []string{"text/event-stream"}},
	}, func(id string) (string, bool) { r, ok := roles[id]; return r, ok })
	require.NoError(t, err)
	return doc
}

func TestBuildEnvelopesAndRoles(t *testing.T) {
	var d map[string]any
	require.NoError(t, json.Unmarshal(build(t), &d))
	require.Equal(t, "NexusRAG API", d["info"].(map[string]any)["title"])
	paths := d["paths"].(map[string]any)

	whoami := paths["/v1/auth/whoami"].(map[string]any)["get"].(map[string]any)
	require.Equal(t, "reader", whoami["x-nexusrag-min-role"])
	ok := whoami["responses"].(map[string]any)["200"].(map[string]any)["schema"].(map[string]any)
	props := ok["properties"].(map[string]any)
	require.Equal(t, "#/definitions/v1WhoAmIResponse", props["data"].(map[string]any)["$ref"], "200 is enveloped")
	require.Equal(t, "#/definitions/Meta", props["meta"].(map[string]any)["$ref"])
	require.Equal(t, "#/definitions/ErrorEnvelope", whoami["responses"].(map[string]any)["default"].(map[string]any)["schema"].(map[string]any)["$ref"])

	health := paths["/v1/health"].(map[string]any)["get"].(map[string]any)
	require.Equal(t, []any{}, health["security"], "public route")
	run := paths["/v1/run"].(map[string]any)["post"].(map[string]any)
	require.Equal(t, "reader", run["x-nexusrag-min-role"])
	require.Contains(t, d["securityDefinitions"], "bearer")
}

func TestPaths(t *testing.T) {
	got, err := apidocs.Paths(build(t))
	require.NoError(t, err)
	require.Equal(t, []apidocs.RouteInfo{
		{Method: "GET", Path: "/v1/api-keys"},
		{Method: "DELETE", Path: "/v1/api-keys/{key_id}"},
		{Method: "PATCH", Path: "/v1/api-keys/{key_id}"},
		{Method: "GET", Path: "/v1/audit/events"},
		{Method: "GET", Path: "/v1/auth/whoami"},
		{Method: "GET", Path: "/v1/corpora"},
		{Method: "GET", Path: "/v1/corpora/{corpus_id}"},
		{Method: "PATCH", Path: "/v1/corpora/{corpus_id}"},
		{Method: "GET", Path: "/v1/health", Public: true},
		{Method: "POST", Path: "/v1/run"},
	}, got)
}

func TestHTMLListsEveryRouteAndEscapes(t *testing.T) {
	page, err := apidocs.HTML(build(t))
	require.NoError(t, err)
	html := string(page)
	for _, p := range []string{"/v1/api-keys/{key_id}", "/v1/audit/events", "/v1/auth/whoami", "/v1/health", "/v1/run", "v1AuditEvent"} {
		require.Contains(t, html, p)
	}
	require.NotContains(t, html, "<script>alert(1)</script>")
	require.Contains(t, html, "&lt;script&gt;")
	require.True(t, strings.Contains(html, "admin or higher") && strings.Contains(html, "public"))
}
