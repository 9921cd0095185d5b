// Package apidocs builds the gateway's OpenAPI document from the one protoc-gen-openapiv2
// generates from proto/: it adds the envelopes, errors, authentication, the role each
// operation needs, and the routes that are not plain gRPC mappings; and renders it as a
// self-contained HTML page.
package apidocs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Route describes a route served by the gateway itself rather than mapped from gRPC.
type Route struct {
	Method, Path, Summary, Description string
	Public                             bool
	MinRole                            string // reader, editor, admin; empty when public
	Tags                               []string
	RequestContentTypes                []string
	ResponseContentTypes               []string
	RequestSchema, ResponseSchema      map[string]any // Swagger 2.0 schema objects, optional
	Responses                          map[string]string
}

// RouteInfo is one (method, path template) of a built document.
type RouteInfo struct {
	Method, Path string
	Public       bool
}

const intro = `Every /v1 JSON success is {"data": <resource>, "meta": {"request_id", "api_version": "v1"}}.
Every error is {"error": {"code", "message", "details"}, "meta": {...}} with a stable, documented code
(for example AUTH_MISSING, FORBIDDEN, MALFORMED_REQUEST, PAYLOAD_TOO_LARGE, ROUTE_NOT_FOUND).

Authentication: send Authorization: Bearer <api key> on every route not marked public. Keys belong to a
tenant and carry a role (reader < editor < admin); each operation states the least role it needs
(x-nexusrag-min-role). 401 for a missing, invalid or revoked key; 403 FORBIDDEN for a too-low role.

X-Request-Id is echoed when sent (up to 128 printable characters), generated otherwise, and appears in
meta.request_id, the logs and the audit log.

Idempotency-Key (write requests, at most 128 printable ASCII characters): the same key with the same
request replays the stored response for 24 hours (header Idempotent-Replayed: true); the same key with a
different request answers 409 IDEMPOTENCY_KEY_CONFLICT; while the first is in flight, 409
IDEMPOTENCY_KEY_IN_PROGRESS.

Legacy paths: every /v1 route also answers at the same path without /v1, in the pre-v1 shape (the bare
resource; errors as {"detail": {"code", "message", ...}}), with Deprecation: true,
Sunset: Sun, 10 May 2026 00:00:00 +0000 and Link: </v1/docs>; rel="successor-version". When the
operator switches them off they answer 410 ENDPOINT_SUNSET.

/v1/openapi.json and /v1/docs are documents and are served without the envelope.`

// Build enriches the generated Swagger 2.0 document. roleOf maps an operation id
// ("AuthService_WhoAmI") to the role it needs.
func Build(spec []byte, extra []Route, roleOf func(operationID string) (string, bool)) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("parse generated openapi document: %w", err)
	}
	doc["info"] = map[string]any{"title": "NexusRAG API", "version": "v1", "description": intro}
	doc["basePath"] = "/"
	doc["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{"type": "apiKey", "in": "header", "name": "Authorization", "description": "Bearer <api key>"},
	}
	doc["security"] = []any{map[string]any{"bearer": []any{}}}
	defs := mapAt(doc, "definitions")
	defs["Meta"] = object(map[string]any{"request_id": str(), "api_version": str()})
	defs["ErrorEnvelope"] = object(map[string]any{
		"error": object(map[string]any{"code": str(), "message": str(), "details": map[string]any{"type": "object", "additionalProperties": str()}}),
		"meta":  ref("Meta"),
	})
	paths := mapAt(doc, "paths")
	for _, item := range paths {
		for _, op := range item.(map[string]any) {
			enrichOperation(op.(map[string]any), roleOf)
		}
	}
	for _, r := range extra {
		item, ok := paths[r.Path].(map[string]any)
		if !ok {
			item = map[string]any{}
			paths[r.Path] = item
		}
		item[strings.ToLower(r.Method)] = extraOperation(r)
	}
	return json.MarshalIndent(doc, "", "  ")
}

func enrichOperation(op map[string]any, roleOf func(string) (string, bool)) {
	responses := mapAt(op, "responses")
	if ok, found := responses["200"].(map[string]any); found {
		if schema, has := ok["schema"]; has {
			ok["schema"] = envelope(schema)
		}
	}
	responses["default"] = map[string]any{"description": "An error, in the error envelope.", "schema": ref("ErrorEnvelope")}
	responses["401"] = map[string]any{"description": "AUTH_MISSING, AUTH_INVALID or AUTH_REVOKED.", "schema": ref("ErrorEnvelope")}
	responses["403"] = map[string]any{"description": "FORBIDDEN: the key's role is below the operation's.", "schema": ref("ErrorEnvelope")}
	if id, _ := op["operationId"].(string); id != "" {
		if role, ok := roleOf(id); ok {
			op["x-nexusrag-min-role"] = role
			note := "Requires role " + role + " or higher."
			if desc, _ := op["description"].(string); desc != "" {
				note = desc + "\n\n" + note
			}
			op["description"] = note
		}
	}
}

func extraOperation(r Route) map[string]any {
	op := map[string]any{"summary": r.Summary, "description": r.Description, "tags": anyList(r.Tags)}
	responses := map[string]any{}
	ok := map[string]any{"description": "Success."}
	if r.ResponseSchema != nil {
		ok["schema"] = envelope(r.ResponseSchema)
	}
	responses["200"] = ok
	responses["default"] = map[string]any{"description": "An error, in the error envelope.", "schema": ref("ErrorEnvelope")}
	for status, desc := range r.Responses {
		responses[status] = map[string]any{"description": desc}
	}
	op["responses"] = responses
	if len(r.ResponseContentTypes) > 0 {
		op["produces"] = anyList(r.ResponseContentTypes)
	}
	if len(r.RequestContentTypes) > 0 {
		op["consumes"] = anyList(r.RequestContentTypes)
	}
	if r.RequestSchema != nil {
		op["parameters"] = []any{map[string]any{"name": "body", "in": "body", "required": true, "schema": r.RequestSchema}}
	}
	if r.Public {
		op["security"] = []any{}
	} else if r.MinRole != "" {
		op["x-nexusrag-min-role"] = r.MinRole
	}
	return op
}

// Paths lists every (method, path) of a built document, sorted, with whether it is public.
func Paths(doc []byte) ([]RouteInfo, error) {
	var d struct {
		Paths map[string]map[string]struct {
			Security *[]any `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse openapi document: %w", err)
	}
	var out []RouteInfo
	for path, item := range d.Paths {
		for method, op := range item {
			out = append(out, RouteInfo{Method: strings.ToUpper(method), Path: path, Public: op.Security != nil && len(*op.Security) == 0})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return out[i].Method < out[j].Method
	})
	return out, nil
}

func envelope(data any) map[string]any {
	return object(map[string]any{"data": data, "meta": ref("Meta")})
}

func object(props map[string]any) map[string]any {
	return map[string]any{"type": "object", "properties": props}
}

func str() map[string]any { return map[string]any{"type": "string"} }

func ref(name string) map[string]any { return map[string]any{"$ref": "#/definitions/" + name} }

func mapAt(m map[string]any, key string) map[string]any {
	v, ok := m[key].(map[string]any)
	if !ok {
		v = map[string]any{}
		m[key] = v
	}
	return v
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
