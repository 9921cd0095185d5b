package apidocs_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/nexusrag/nexusrag/gen/openapi"
	"github.com/nexusrag/nexusrag/internal/version"
	"github.com/nexusrag/nexusrag/services/gateway/apidocs"
)

// describe stands in for the proto options: the gateway passes a resolver that reads
// them, the tests a table. RetrievalService_UpdateCorpus is left out on purpose.
func describe(id string) apidocs.Operation {
	switch id {
	case "IngestService_CreateDocument":
		return apidocs.Operation{MinRole: "editor", Accepted: true}
	case "RunService_Run":
		return apidocs.Operation{MinRole: "reader", Events: []apidocs.Event{{Name: "request.accepted", Definition: "v1Accepted"}, {Name: "done", Definition: "v1Done"}}}
	}
	return apidocs.Operation{MinRole: map[string]string{
		"AuthService_WhoAmI":           "reader",
		"AuthService_ListApiKeys":      "admin",
		"AuthService_RevokeApiKey":     "admin",
		"AuthService_UpdateApiKey":     "admin",
		"AuditService_ListAuditEvents": "admin",
		"RetrievalService_ListCorpora": "reader",
		"RetrievalService_GetCorpus":   "reader",
	}[id]}
}

func extraRoutes() []apidocs.Route {
	return []apidocs.Route{
		{Method: "GET", Path: "/v1/health", Public: true, Summary: "Health", Tags: []string{"Operations"},
			ResponseSchema: map[string]any{"type": "object"}, Responses: map[string]string{"503": "SERVICE_UNAVAILABLE"}},
		{Method: "POST", Path: "/v1/echo", MinRole: "reader", Summary: "Echo <script>alert(1)</script>",
			RequestSchema:        map[string]any{"type": "object", "properties": map[string]any{"query": map[string]any{"type": "string"}}},
			ResponseContentTypes: []string{"text/event-stream"}, ResponseSchema: map[string]any{"type": "string"}},
	}
}

// limits stand in for the gateway's: the plans routes are not counted, every method but
// GET is gated.
var limits = apidocs.Limits{
	Counted:    func(path string) bool { return !strings.HasPrefix(path, "/v1/admin/plans") },
	WriteGated: func(method, _ string) bool { return method != "GET" },
}

func build(tb testing.TB, extra []apidocs.Route) []byte {
	tb.Helper()
	doc, err := apidocs.Build(openapi.Spec, extra, describe, limits)
	require.NoError(tb, err)
	return doc
}

func decode(tb testing.TB, doc []byte) map[string]any {
	tb.Helper()
	var d map[string]any
	require.NoError(tb, json.Unmarshal(doc, &d))
	return d
}

// at walks a decoded document by keys.
func at(tb testing.TB, v any, keys ...string) any {
	tb.Helper()
	for _, k := range keys {
		m, ok := v.(map[string]any)
		require.Truef(tb, ok, "%q: parent is %T, not an object", k, v)
		v, ok = m[k]
		require.Truef(tb, ok, "missing key %q", k)
	}
	return v
}

func TestBuildTopLevel(t *testing.T) {
	doc := build(t, extraRoutes())
	require.True(t, json.Valid(doc))
	require.Equal(t, doc, build(t, extraRoutes()), "deterministic output")

	d := decode(t, doc)
	require.Equal(t, "3.0.3", d["openapi"])
	require.NotContains(t, d, "swagger")
	require.Equal(t, "NexusRAG API", at(t, d, "info", "title"))
	require.Equal(t, version.Version, at(t, d, "info", "version"), "the release, not the API's path version")
	require.Equal(t, []any{map[string]any{"url": "/"}}, d["servers"])
	require.Equal(t, map[string]any{"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <api key>"},
		at(t, d, "components", "securitySchemes", "bearer"))
	require.Equal(t, []any{map[string]any{"bearer": []any{}}}, d["security"])
	schemas := at(t, d, "components", "schemas")
	require.Equal(t, "string", at(t, schemas, "Meta", "properties", "request_id", "type"))
	require.Equal(t, "string", at(t, schemas, "Meta", "properties", "api_version", "type"))
	require.Equal(t, "#/components/schemas/Meta", at(t, schemas, "ErrorEnvelope", "properties", "meta", "$ref"))
	for _, field := range []string{"code", "message", "details"} {
		at(t, schemas, "ErrorEnvelope", "properties", "error", "properties", field)
	}
	for _, field := range []string{"code", "message", "scope", "route_class", "retry_after_ms"} {
		at(t, schemas, "RateLimitedError", "properties", "detail", "properties", field)
	}
	for _, field := range []string{"code", "message", "period", "limit", "used", "remaining"} {
		at(t, schemas, "QuotaExceededError", "properties", "detail", "properties", field)
	}
	require.Contains(t, d["tags"], map[string]any{"name": "Operations"}, "extra tags are declared")
}

func TestBuildIntroDocumentsTheContract(t *testing.T) {
	intro := at(t, decode(t, build(t, nil)), "info", "description").(string)
	for _, want := range []string{
		`"data"`, `"meta"`, `"request_id"`, `"api_version": "v1"`, `"error"`, `"code"`, `"details"`,
		"Authorization: Bearer <api key>",
		"Idempotency-Key", "128", "24 hours", "409 IDEMPOTENCY_KEY_CONFLICT",
		"X-Request-Id", `{"detail": {...}}`, "429 RATE_LIMITED", "402 QUOTA_EXCEEDED", "WRITES_FROZEN", "Retry-After",
		"Deprecation: true", "Sunset: Sun, 10 May 2026 00:00:00 +0000",
		`Link: </v1/docs>; rel="successor-version"`, "410 ENDPOINT_SUNSET",
	} {
		require.Contains(t, intro, want)
	}
}

func TestBuildOperations(t *testing.T) {
	d := decode(t, build(t, extraRoutes()))
	tests := []struct {
		method, path string
		role         string // "" means no x-nexusrag-min-role
		public       bool
		okType       string         // the success's content type
		okSchema     map[string]any // the success schema
		success      string         // the success status, 200 when empty
	}{
		{"get", "/v1/auth/whoami", "reader", false, "application/json", envelopeOf(ref("v1WhoAmIResponse")), ""},
		{"get", "/v1/audit/events", "admin", false, "application/json", envelopeOf(ref("v1ListAuditEventsResponse")), ""},
		{"delete", "/v1/api-keys/{key_id}", "admin", false, "application/json", envelopeOf(ref("v1RevokeApiKeyResponse")), ""},
		{"patch", "/v1/corpora/{corpus_id}", "", false, "application/json", envelopeOf(ref("v1UpdateCorpusResponse")), ""}, // describe has no role for it
		{"get", "/v1/health", "", true, "application/json", envelopeOf(map[string]any{"type": "object"}), ""},
		{"post", "/v1/echo", "reader", false, "text/event-stream", map[string]any{"type": "string"}, ""},                          // not JSON: not enveloped
		{"post", "/v1/run", "reader", false, "text/event-stream", map[string]any{"type": "string", "format": "event-stream"}, ""}, // event stream
		{"post", "/v1/documents/text", "editor", false, "application/json", envelopeOf(ref("v1CreateDocumentResponse")), "202"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			op := at(t, d, "paths", tt.path, tt.method).(map[string]any)
			responses := op["responses"].(map[string]any)
			success := tt.success
			if success == "" {
				success = "200"
			}
			require.Equal(t, tt.okSchema, at(t, responses, success, "content", tt.okType, "schema"))
			if success != "200" {
				require.NotContains(t, responses, "200")
			}
			require.Equal(t, jsonBody(ref("ErrorEnvelope")), at(t, responses, "default", "content"), "errors are JSON, whatever the success is")
			require.Equal(t, jsonBody(ref("ErrorEnvelope")), at(t, responses, "503", "content"))
			require.Equal(t, jsonBody(ref("ErrorEnvelope")), at(t, responses, "504", "content"))

			if tt.role == "" {
				require.NotContains(t, op, "x-nexusrag-min-role")
			} else {
				require.Equal(t, tt.role, op["x-nexusrag-min-role"])
				require.Contains(t, op["description"], "Requires role "+tt.role+" or higher.")
			}
			if tt.public {
				require.Equal(t, []any{}, op["security"])
				for _, status := range []string{"401", "403", "429", "402"} {
					require.NotContains(t, responses, status, "public routes are neither authenticated nor limited")
				}
				return
			}
			require.Contains(t, at(t, responses, "503", "headers"), "Retry-After")
			require.NotContains(t, op, "security", "protected routes use the global requirement")
			require.Equal(t, jsonBody(ref("ErrorEnvelope")), at(t, responses, "401", "content"))
			require.Equal(t, jsonBody(ref("ErrorEnvelope")), at(t, responses, "403", "content"))
			require.Equal(t, jsonBody(ref("RateLimitedError")), at(t, responses, "429", "content"))
			for _, h := range []string{"Retry-After", "X-RateLimit-Retry-After-Ms", "X-RateLimit-Scope", "X-RateLimit-Route-Class"} {
				require.Contains(t, at(t, responses, "429", "headers"), h)
			}
			require.Equal(t, jsonBody(ref("QuotaExceededError")), at(t, responses, "402", "content"))
		})
	}
}

func TestBuildExtraRouteDetails(t *testing.T) {
	upload := apidocs.Route{
		Method: "POST", Path: "/v1/documents", MinRole: "editor", Summary: "Upload a document",
		RequestContentTypes: []string{"multipart/form-data"},
		RequestSchema: map[string]any{"type": "object", "required": []string{"file"}, "properties": map[string]any{
			"file":  map[string]any{"type": "file", "description": "The document."},
			"title": map[string]any{"type": "string"},
		}},
		ResponseSchema: map[string]any{"$ref": "#/definitions/v1CreateDocumentResponse"}, // routes are written in Swagger 2.0
		Responses:      map[string]string{"413": "PAYLOAD_TOO_LARGE", "202": "Accepted; ingestion is queued."},
	}
	audio := apidocs.Route{Method: "GET", Path: "/v1/audio/{audio_id}.mp3", Public: true, ResponseContentTypes: []string{"audio/mpeg"}}
	d := decode(t, build(t, append(extraRoutes(), upload, audio)))

	op := at(t, d, "paths", "/v1/documents", "post").(map[string]any)
	require.Equal(t, map[string]any{"type": "object", "required": []any{"file"}, "properties": map[string]any{
		"file":  map[string]any{"type": "string", "format": "binary", "description": "The document."},
		"title": map[string]any{"type": "string"},
	}}, at(t, op, "requestBody", "content", "multipart/form-data", "schema"), "a multipart body is one object schema")
	require.Equal(t, envelopeOf(ref("v1CreateDocumentResponse")), at(t, op, "responses", "200", "content", "application/json", "schema"))
	require.Equal(t, jsonBody(ref("ErrorEnvelope")), at(t, op, "responses", "413", "content"), "error statuses carry the error envelope")
	require.Equal(t, map[string]any{"description": "Accepted; ingestion is queued."}, at(t, op, "responses", "202"))
	require.Equal(t, []any{map[string]any{"name": "audio_id", "in": "path", "required": true, "schema": map[string]any{"type": "string"}}},
		at(t, d, "paths", "/v1/audio/{audio_id}.mp3", "get", "parameters"), "every template variable is a path parameter")

	echo := at(t, d, "paths", "/v1/echo", "post").(map[string]any)
	require.Contains(t, at(t, echo, "requestBody", "content"), "application/json", "JSON bodies are the request body")
	require.Equal(t, "SERVICE_UNAVAILABLE", at(t, d, "paths", "/v1/health", "get", "responses", "503", "description"), "a route's own 503 is kept")
	require.Contains(t, at(t, d, "paths", "/v1/documents/{document_id}", "delete", "responses", "503", "description"), "WRITES_FROZEN")
	require.NotContains(t, at(t, d, "paths", "/v1/documents/{document_id}", "get", "responses", "503", "description"), "WRITES_FROZEN")
	require.NotContains(t, at(t, d, "paths", "/v1/admin/plans", "get", "responses"), "402", "an uncounted route cannot meet its quota")
	require.Contains(t, at(t, d, "paths", "/v1/admin/plans", "get", "responses"), "429")
}

// TestBuildEventStream: a streamed operation of the contract is documented as the
// gateway serves it, Server-Sent Events, each kind with the definition of its data.
func TestBuildEventStream(t *testing.T) {
	run := at(t, decode(t, build(t, nil)), "paths", "/v1/run", "post").(map[string]any)
	require.Equal(t, []any{"text/event-stream"}, keys(at(t, run, "responses", "200", "content")))
	require.Equal(t, []any{
		map[string]any{"event": "request.accepted", "data": "#/components/schemas/v1Accepted"},
		map[string]any{"event": "done", "data": "#/components/schemas/v1Done"},
	}, run["x-nexusrag-sse-events"])
	desc := at(t, run, "responses", "200", "description").(string)
	require.Contains(t, desc, apidocs.EventStreamFraming)
	require.Contains(t, desc, "`request.accepted`: data is v1Accepted")
	require.Equal(t, ref("v1RunRequest"), at(t, run, "requestBody", "content", "application/json", "schema"), "the request is the contract's")
	require.Equal(t, "reader", run["x-nexusrag-min-role"])
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name  string
		spec  string
		extra []apidocs.Route
	}{
		{"invalid json", `{"paths":`, nil},
		{"not an object", `[]`, nil},
		{"paths not an object", `{"paths": []}`, nil},
		{"operation not an object", `{"paths": {"/v1/x": {"get": 1}}}`, nil},
		{"definition name taken", `{"definitions": {"Meta": {}}}`, nil},
		{"route already documented", string(openapi.Spec), []apidocs.Route{{Method: "GET", Path: "/v1/auth/whoami"}}},
		{"unknown method", `{}`, []apidocs.Route{{Method: "FETCH", Path: "/v1/x"}}},
		{"relative path", `{}`, []apidocs.Route{{Method: "GET", Path: "v1/x"}}},
		{"unknown role", `{}`, []apidocs.Route{{Method: "GET", Path: "/v1/x", MinRole: "owner"}}},
		{"public with a role", `{}`, []apidocs.Route{{Method: "GET", Path: "/v1/x", Public: true, MinRole: "reader"}}},
		{"bad status", `{}`, []apidocs.Route{{Method: "GET", Path: "/v1/x", Responses: map[string]string{"oops": "x"}}}},
		{"dangling reference", `{}`, []apidocs.Route{{Method: "GET", Path: "/v1/x", ResponseSchema: map[string]any{"$ref": "#/definitions/Nowhere"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := apidocs.Build([]byte(tt.spec), tt.extra, describe, apidocs.Limits{})
			require.Error(t, err)
		})
	}
}

func TestBuildSkipsPathItemFields(t *testing.T) {
	spec := `{"swagger": "2.0", "paths": {"/v1/things/{id}": {
		"parameters": [{"name": "id", "in": "path", "required": true, "type": "string"}],
		"x-note": "kept",
		"get": {"operationId": "ThingService_GetThing", "responses": {"200": {"description": "ok"}}}}}}`
	doc, err := apidocs.Build([]byte(spec), nil, nil, apidocs.Limits{})
	require.NoError(t, err)
	d := decode(t, doc)
	require.Equal(t, "kept", at(t, d, "paths", "/v1/things/{id}", "x-note"))
	require.Equal(t, map[string]any{"description": "ok"}, at(t, d, "paths", "/v1/things/{id}", "get", "responses", "200"), "no schema, nothing to envelope")

	got, err := apidocs.Paths(doc)
	require.NoError(t, err)
	require.Equal(t, []apidocs.RouteInfo{{Method: "GET", Path: "/v1/things/{id}"}}, got)
	_, err = apidocs.HTML(doc)
	require.NoError(t, err)
}

func TestPaths(t *testing.T) {
	got, err := apidocs.Paths(build(t, extraRoutes()))
	require.NoError(t, err)
	require.Equal(t, []apidocs.RouteInfo{
		{Method: "GET", Path: "/v1/admin/governance/dsar"},
		{Method: "POST", Path: "/v1/admin/governance/dsar"},
		{Method: "GET", Path: "/v1/admin/governance/dsar/{dsar_id}"},
		{Method: "POST", Path: "/v1/admin/governance/dsar/{dsar_id}/approve"},
		{Method: "GET", Path: "/v1/admin/governance/dsar/{dsar_id}/artifact"},
		{Method: "GET", Path: "/v1/admin/governance/legal-holds"},
		{Method: "POST", Path: "/v1/admin/governance/legal-holds"},
		{Method: "POST", Path: "/v1/admin/governance/legal-holds/{hold_id}/release"},
		{Method: "GET", Path: "/v1/admin/governance/policies"},
		{Method: "POST", Path: "/v1/admin/governance/policies"},
		{Method: "DELETE", Path: "/v1/admin/governance/policies/{policy_id}"},
		{Method: "PATCH", Path: "/v1/admin/governance/policies/{policy_id}"},
		{Method: "GET", Path: "/v1/admin/governance/retention/policy"},
		{Method: "PATCH", Path: "/v1/admin/governance/retention/policy"},
		{Method: "GET", Path: "/v1/admin/governance/retention/report"},
		{Method: "POST", Path: "/v1/admin/governance/retention/run"},
		{Method: "POST", Path: "/v1/admin/maintenance/run"},
		{Method: "GET", Path: "/v1/admin/plans"},
		{Method: "GET", Path: "/v1/admin/plans/{tenant_id}"},
		{Method: "PATCH", Path: "/v1/admin/plans/{tenant_id}"},
		{Method: "PATCH", Path: "/v1/admin/plans/{tenant_id}/overrides"},
		{Method: "GET", Path: "/v1/admin/quotas/{tenant_id}"},
		{Method: "PATCH", Path: "/v1/admin/quotas/{tenant_id}"},
		{Method: "GET", Path: "/v1/admin/rollouts/canary"},
		{Method: "PATCH", Path: "/v1/admin/rollouts/canary"},
		{Method: "GET", Path: "/v1/admin/rollouts/killswitches"},
		{Method: "PATCH", Path: "/v1/admin/rollouts/killswitches"},
		{Method: "GET", Path: "/v1/admin/usage/{tenant_id}"},
		{Method: "GET", Path: "/v1/api-keys"},
		{Method: "DELETE", Path: "/v1/api-keys/{key_id}"},
		{Method: "PATCH", Path: "/v1/api-keys/{key_id}"},
		{Method: "GET", Path: "/v1/audit/events"},
		{Method: "GET", Path: "/v1/auth/whoami"},
		{Method: "GET", Path: "/v1/corpora"},
		{Method: "GET", Path: "/v1/corpora/{corpus_id}"},
		{Method: "PATCH", Path: "/v1/corpora/{corpus_id}"},
		{Method: "GET", Path: "/v1/documents"},
		{Method: "POST", Path: "/v1/documents/text"},
		{Method: "DELETE", Path: "/v1/documents/{document_id}"},
		{Method: "GET", Path: "/v1/documents/{document_id}"},
		{Method: "POST", Path: "/v1/documents/{document_id}/reindex"},
		{Method: "POST", Path: "/v1/echo"},
		{Method: "GET", Path: "/v1/health", Public: true},
		{Method: "GET", Path: "/v1/ops/dr/readiness"},
		{Method: "PATCH", Path: "/v1/ops/failover/freeze-writes"},
		{Method: "POST", Path: "/v1/ops/failover/promote"},
		{Method: "GET", Path: "/v1/ops/failover/readiness"},
		{Method: "POST", Path: "/v1/ops/failover/request-token"},
		{Method: "POST", Path: "/v1/ops/failover/rollback"},
		{Method: "GET", Path: "/v1/ops/failover/status"},
		{Method: "GET", Path: "/v1/ops/governance/evidence"},
		{Method: "GET", Path: "/v1/ops/governance/status"},
		{Method: "GET", Path: "/v1/ops/health"},
		{Method: "GET", Path: "/v1/ops/ingestion"},
		{Method: "POST", Path: "/v1/ops/ingestion/dead-letters/{job_id}/requeue"},
		{Method: "GET", Path: "/v1/ops/metrics"},
		{Method: "GET", Path: "/v1/ops/slo"},
		{Method: "POST", Path: "/v1/run"},
		{Method: "GET", Path: "/v1/self-serve/api-keys"},
		{Method: "POST", Path: "/v1/self-serve/api-keys"},
		{Method: "POST", Path: "/v1/self-serve/api-keys/{key_id}/revoke"},
		{Method: "POST", Path: "/v1/self-serve/billing/webhook-test"},
		{Method: "GET", Path: "/v1/self-serve/plan"},
		{Method: "POST", Path: "/v1/self-serve/plan/upgrade-request"},
		{Method: "GET", Path: "/v1/self-serve/usage/summary"},
		{Method: "GET", Path: "/v1/self-serve/usage/timeseries"},
		{Method: "POST", Path: "/v1/ui/actions/reindex-document"},
		{Method: "GET", Path: "/v1/ui/activity"},
		{Method: "GET", Path: "/v1/ui/bootstrap"},
		{Method: "GET", Path: "/v1/ui/dashboard/summary"},
		{Method: "GET", Path: "/v1/ui/documents"},
	}, got)

	_, err = apidocs.Paths([]byte(`{"paths": [`))
	require.Error(t, err)
}

func TestHTML(t *testing.T) {
	page, err := apidocs.HTML(build(t, extraRoutes()))
	require.NoError(t, err)

	for _, want := range []string{
		`<a href="/v1/openapi.json">`,
		"/v1/api-keys/{key_id}", "/v1/audit/events", "/v1/auth/whoami", "/v1/corpora/{corpus_id}", "/v1/health", "/v1/run",
		"Idempotency-Key",              // the intro
		`<code>include_revoked</code>`, // a query parameter
		"string (date-time)",           // a parameter type with its format
		`<a href="#def-v1WhoAmIResponse">envelope of v1WhoAmIResponse</a>`, // response linked to its definition
		`<a href="#def-AuthServiceUpdateApiKeyBody">`,                      // request body linked to its definition
		`id="def-v1AuditEvent"`, `<code>occurred_at</code>`,                // definitions with their fields
		`id="def-ErrorEnvelope"`,
		`<a href="#op-DELETE-v1-api-keys-key_id">`, `<section id="op-DELETE-v1-api-keys-key_id">`, // table of contents
		"admin or higher", "reader or higher", "public",
	} {
		require.Contains(t, string(page), want)
	}
	require.NotContains(t, string(page), "<script>", "values from the document are escaped")
	require.Contains(t, string(page), "Echo &lt;script&gt;alert(1)&lt;/script&gt;")
	require.Equal(t, 1, bytes.Count(page, []byte("<style>")), "styles are inline")
	require.NotContains(t, string(page), `src="http`, "no external assets")
	require.NotContains(t, string(page), `<link `)

	_, err = apidocs.HTML([]byte("not json"))
	require.Error(t, err)
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func jsonBody(schema map[string]any) map[string]any {
	return map[string]any{"application/json": map[string]any{"schema": schema}}
}

// keys lists an object's keys, sorted.
func keys(v any) []any {
	var out []any
	for _, k := range slices.Sorted(maps.Keys(v.(map[string]any))) {
		out = append(out, k)
	}
	return out
}

func envelopeOf(data map[string]any) map[string]any {
	return map[string]any{"type": "object", "properties": map[string]any{"data": data, "meta": ref("Meta")}}
}

// TestBuildIsValidOpenAPI3: the served document loads and validates as OpenAPI 3 (the
// SDK suite validates it again with an independent validator, swagger-parser).
func TestBuildIsValidOpenAPI3(t *testing.T) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(build(t, extraRoutes()))
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context))
}
