// Package apidocs builds the gateway's OpenAPI document from the one protoc-gen-openapiv2
// generates from proto/: it adds the envelopes, errors, authentication, the role each
// operation needs, and the routes that are not plain gRPC mappings; it lists the routes
// of that document (the gateway's route table) and renders it as a self-contained HTML page.
//
// The generator emits Swagger 2.0: the document is enriched as plain JSON values (so
// whatever the generator emits and this package does not know about passes through
// unchanged), then converted to OpenAPI 3.0 with kin-openapi's openapi2conv, which is
// what the gateway serves and the SDKs are generated from.
package apidocs

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nexusrag/nexusrag/internal/version"
)

// Route describes a route served by the gateway itself rather than mapped from gRPC
// (health, the docs, streams, uploads).
//
// ResponseSchema is the "data" of the envelope when the route answers JSON (no
// ResponseContentTypes, or one of them application/json); for any other content type it
// is the body as sent. A RequestSchema of a multipart or form route is documented as
// formData parameters, one per property (type "file" for a file part).
type Route struct {
	// OperationID names the operation for SDK generators ("RunService_GetAudio"), in the
	// generated operations' Service_Method style.
	OperationID                        string
	Method, Path, Summary, Description string
	Public                             bool
	MinRole                            string // reader, editor, admin; empty when public
	Tags                               []string
	RequestContentTypes                []string
	ResponseContentTypes               []string
	RequestSchema, ResponseSchema      map[string]any    // Swagger 2.0 schema objects, optional
	Responses                          map[string]string // extra status -> description
	// SuccessStatus is the status of a success (default "200").
	SuccessStatus string
}

// RouteInfo is one (method, path template) of a built document.
type RouteInfo struct {
	Method, Path string
	Public       bool
}

const (
	metaDef          = "Meta"
	errorEnvelopeDef = "ErrorEnvelope"
	rateLimitedDef   = "RateLimitedError"
	quotaExceededDef = "QuotaExceededError"
	minRoleExt       = "x-nexusrag-min-role"
	sseEventsExt     = "x-nexusrag-sse-events"
)

const intro = `Every /v1 JSON success is {"data": <resource>, "meta": {"request_id": "...", "api_version": "v1"}}.
Every error is {"error": {"code": "STABLE_CODE", "message": "...", "details": {...}}, "meta": {...}}.
The code is stable and meant for programs (for example AUTH_MISSING, FORBIDDEN, MALFORMED_REQUEST,
NOT_FOUND, PAYLOAD_TOO_LARGE, ROUTE_NOT_FOUND, SERVICE_UNAVAILABLE); the message is for
people and may change; details carries the fields a program needs to act (for example the offending field).

Authentication: send Authorization: Bearer <api key> on every route not marked public. Keys belong to a
tenant and carry a role (reader < editor < admin); each operation states the least role it needs
(x-nexusrag-min-role). 401 AUTH_MISSING, AUTH_INVALID or AUTH_REVOKED for a missing, unknown or revoked
key; 403 FORBIDDEN when the key's role is too low.

X-Request-Id: echoed when sent (up to 128 printable characters), generated otherwise; it appears in
meta.request_id, in the response header, in the logs and in the audit log.

Idempotency-Key (write requests, at most 128 printable ASCII characters): the same key with the same
payload replays the stored response for 24 hours (header Idempotent-Replayed: true); the same key with a
different payload answers 409 IDEMPOTENCY_KEY_CONFLICT; while the first request is in flight, 409
IDEMPOTENCY_KEY_IN_PROGRESS.

Legacy paths: every /v1 route also answers at the same path without /v1, in the pre-v1 shape (the bare
resource, without the envelope), with the headers Deprecation: true,
Sunset: Sun, 10 May 2026 00:00:00 +0000 and Link: </v1/docs>; rel="successor-version".
When the operator switches legacy paths off they answer 410 ENDPOINT_SUNSET.

Limits: every authenticated request is rate limited per API key and per tenant, and counts against the
tenant's request quotas. These two refusals are not in the error envelope but in the {"detail": {...}} shape:
429 RATE_LIMITED (detail: code, message, scope, route_class, retry_after_ms; headers Retry-After in seconds
and X-RateLimit-Retry-After-Ms) and 402 QUOTA_EXCEEDED (detail: code, message, period, limit, used,
remaining). 503 SERVICE_UNAVAILABLE (a dependency is down) and 503 WRITES_FROZEN (a write while this region
takes none, during a failover) carry Retry-After. Retry a 429 or 503 after Retry-After; retry a write only
with an Idempotency-Key.

/v1/openapi.json (OpenAPI 3.0) and /v1/docs are documents and are served without the envelope.`

// Limits says which of the edge's refusals a route can meet, beyond the 429 of every
// authenticated route and the 503 of every route. A nil function answers false.
type Limits struct {
	// Counted reports whether an authenticated route template counts against the
	// tenant's request quotas, hence can answer 402 QUOTA_EXCEEDED.
	Counted func(path string) bool
	// WriteGated reports whether a route is refused with 503 WRITES_FROZEN while the
	// region takes no writes.
	WriteGated func(method, path string) bool
}

// Operation is what the contract says of a generated operation.
type Operation struct {
	// MinRole is the least role it needs (reader, editor, admin); empty leaves the operation
	// without x-nexusrag-min-role.
	MinRole string
	// Accepted operations start asynchronous work and answer 202 instead of 200.
	Accepted bool
	// Events, when set, make the operation a stream of Server-Sent Events: the gateway's
	// framing (EventStreamFraming), then these kinds, in the contract's order.
	Events []Event
}

// Event is one kind of Server-Sent Event of a streamed operation: its name and the
// definition of its data.
type Event struct {
	Name, Definition string
}

// EventStreamFraming describes how the gateway writes every event stream.
const EventStreamFraming = "The response is text/event-stream. Each event is written as `id: <seq>`, `event: <name>`, " +
	"`data: {\"type\": <name>, \"request_id\", \"seq\", \"data\": <the kind's fields>}`; seq counts every event of the stream " +
	"from 1, and is its SSE id. A `heartbeat` event {type, ts, request_id, seq} is written whenever the stream has been idle " +
	"for RUN_HEARTBEAT_INTERVAL. Errors before the first event are ordinary JSON errors. Idempotency-Key does not apply. " +
	"By default a client that goes away cancels the work, and a request with Last-Event-ID gets `resume.unsupported` " +
	"{last_event_id, message} then `done`. Where the operator turned RUN_STREAM_RESUME on, the SSE id is `<stream id>.<seq>`, " +
	"the work goes on when the client goes away, and the same request with Last-Event-ID, on any replica and within " +
	"RUN_STREAM_RESUME_TTL, gets the events after that id, then the rest live (a stream whose producer died ends with " +
	"`error` STREAM_INTERRUPTED, then `done`); an unknown, expired or another key's id gets `resume.unsupported`."

// Build enriches the generated Swagger 2.0 document spec (envelopes, error responses,
// bearer authentication, the role and success status of each operation, the extra
// routes) and converts it to OpenAPI 3.0. describe maps an operation id
// ("AuthService_WhoAmI") to its Operation; nil is allowed. limits says which of the
// edge's refusals each route can meet. The output is indented JSON with sorted keys: the
// same input gives the same bytes.
func Build(spec []byte, extra []Route, describe func(operationID string) Operation, limits Limits) ([]byte, error) {
	v2, err := buildV2(spec, extra, describe, limits)
	if err != nil {
		return nil, err
	}
	return toV3(v2)
}

// buildV2 is Build before the conversion: the enriched Swagger 2.0 document as JSON.
func buildV2(spec []byte, extra []Route, describe func(operationID string) Operation, limits Limits) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, fmt.Errorf("parse generated openapi document: %w", err)
	}
	if doc == nil {
		return nil, errors.New("parse generated openapi document: not a JSON object")
	}
	paths, err := objectAt(doc, "paths")
	if err != nil {
		return nil, fmt.Errorf("generated openapi document: %w", err)
	}
	defs, err := objectAt(doc, "definitions")
	if err != nil {
		return nil, fmt.Errorf("generated openapi document: %w", err)
	}
	if err := addDefinitions(defs); err != nil {
		return nil, err
	}
	if err := enrichGenerated(paths, describe); err != nil {
		return nil, err
	}
	if err := addRoutes(paths, extra); err != nil {
		return nil, err
	}
	if err := addLimitResponses(paths, limits); err != nil {
		return nil, err
	}
	setTopLevel(doc, extra)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return out, nil
}

func setTopLevel(doc map[string]any, extra []Route) {
	doc["info"] = map[string]any{"title": "NexusRAG API", "version": version.Version, "description": intro}
	doc["basePath"] = "/"
	doc["securityDefinitions"] = map[string]any{"bearer": map[string]any{
		"type": "apiKey", "in": "header", "name": "Authorization", "description": "Bearer <api key>",
	}}
	doc["security"] = []any{map[string]any{"bearer": []any{}}}
	doc["tags"] = withTags(doc["tags"], extra)
}

// withTags appends the extra routes' tags missing from the generated tag list, in
// first-use order, so every tag an operation uses is declared.
func withTags(tags any, extra []Route) []any {
	list, _ := tags.([]any)
	seen := map[string]bool{}
	for _, t := range list {
		if m, ok := t.(map[string]any); ok {
			name, _ := m["name"].(string)
			seen[name] = true
		}
	}
	for _, r := range extra {
		for _, name := range r.Tags {
			if !seen[name] {
				seen[name] = true
				list = append(list, map[string]any{"name": name})
			}
		}
	}
	if list == nil {
		return []any{}
	}
	return list
}

func addDefinitions(defs map[string]any) error {
	for _, name := range []string{metaDef, errorEnvelopeDef, rateLimitedDef, quotaExceededDef} {
		if _, taken := defs[name]; taken {
			return fmt.Errorf("definition %s already exists in the generated document", name)
		}
	}
	defs[metaDef] = object(map[string]any{
		"request_id":  describedString("The request id: the X-Request-Id sent, or one generated by the gateway."),
		"api_version": describedString("Always v1."),
	})
	defs[errorEnvelopeDef] = object(map[string]any{
		"error": object(map[string]any{
			"code":    describedString("Stable, machine-readable error code, for example FORBIDDEN."),
			"message": describedString("Human-readable explanation; may change."),
			"details": map[string]any{"type": "object", "description": "Fields a program needs to act on the error."},
		}),
		"meta": ref(metaDef),
	})
	defs[rateLimitedDef] = detailShape("429 RATE_LIMITED, in the {\"detail\": ...} shape.", map[string]any{
		"code":           describedString("RATE_LIMITED."),
		"message":        describedString("Which limit refused the request and when to retry."),
		"scope":          describedString("The bucket that is empty: api_key or tenant."),
		"route_class":    describedString("The route's class: read, mutation, run or ops."),
		"retry_after_ms": map[string]any{"type": "integer", "format": "int64", "description": "Milliseconds until a request of this class is admitted."},
	}, "code", "message", "scope", "route_class", "retry_after_ms")
	defs[quotaExceededDef] = detailShape("402 QUOTA_EXCEEDED, in the {\"detail\": ...} shape.", map[string]any{
		"code":      describedString("QUOTA_EXCEEDED."),
		"message":   describedString("Which quota is spent."),
		"period":    describedString("The spent period: day or month."),
		"limit":     map[string]any{"type": "integer", "format": "int64", "description": "The period's hard cap."},
		"used":      map[string]any{"type": "integer", "format": "int64", "description": "Requests counted in the period."},
		"remaining": map[string]any{"type": "integer", "format": "int64", "description": "Requests left in the period (0)."},
	}, "code", "message", "period", "limit", "used", "remaining")
	return nil
}

// detailShape is a {"detail": {...}} refusal whose detail has props, all of required.
func detailShape(description string, props map[string]any, required ...string) map[string]any {
	detail := object(props)
	detail["required"] = anyList(required)
	shape := object(map[string]any{"detail": detail})
	shape["required"] = []any{"detail"}
	shape["description"] = description
	return shape
}

// addLimitResponses documents the answers of the edge's limits: 503 with Retry-After on
// every operation (WRITES_FROZEN too where the write gate applies), 429 on authenticated
// ones and 402 where the route counts against the quotas.
func addLimitResponses(paths map[string]any, limits Limits) error {
	return eachOperation(paths, func(method, path string, op map[string]any) error {
		responses, err := objectAt(op, "responses")
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		unavailable := temporaryRefusals
		if limits.WriteGated != nil && limits.WriteGated(method, path) {
			unavailable += "; WRITES_FROZEN (this region takes no writes now: a failover, a standby or frozen region; reads go on)"
		}
		if _, own := responses["503"]; !own {
			responses["503"] = withHeaders(errorResponse(unavailable+". Retry after Retry-After."), retryAfterHeader())
		}
		if _, own := responses["504"]; !own {
			responses["504"] = errorResponse("DEADLINE_EXCEEDED: the request ran out of time in a service; retry.")
		}
		if isPublic(op) {
			return nil
		}
		limited := map[string]any{"description": "RATE_LIMITED: a rate limit of the API key or the tenant refused the request; retry after Retry-After.",
			"schema": ref(rateLimitedDef)}
		responses["429"] = withHeaders(limited, retryAfterHeader(), map[string]any{
			"X-RateLimit-Retry-After-Ms": map[string]any{"type": "integer", "description": "Milliseconds until the request would be admitted."},
			"X-RateLimit-Scope":          map[string]any{"type": "string", "description": "api_key or tenant."},
			"X-RateLimit-Route-Class":    map[string]any{"type": "string", "description": "read, mutation, run or ops."},
		})
		if limits.Counted != nil && limits.Counted(path) {
			responses["402"] = map[string]any{"description": "QUOTA_EXCEEDED: the tenant's daily or monthly request quota is spent.",
				"schema": ref(quotaExceededDef)}
		}
		return nil
	})
}

// temporaryRefusals are the 503 codes any route can meet.
const temporaryRefusals = "Temporary: SERVICE_UNAVAILABLE (a backend service unreachable), DEPENDENCY_UNAVAILABLE (Postgres or Redis " +
	"unreachable), SERVICE_BUSY (a bulkhead is full), FEATURE_KILLED (a kill switch is on), AUTH_UNAVAILABLE (keys cannot be checked), " +
	"RATE_LIMIT_UNAVAILABLE, QUOTA_UNAVAILABLE or IDEMPOTENCY_UNAVAILABLE (Redis down, with the fail-closed settings)"

func retryAfterHeader() map[string]any {
	return map[string]any{"Retry-After": map[string]any{"type": "integer", "description": "Seconds to wait before retrying, when known."}}
}

func withHeaders(resp map[string]any, headers ...map[string]any) map[string]any {
	all := map[string]any{}
	for _, h := range headers {
		for k, v := range h {
			all[k] = v
		}
	}
	resp["headers"] = all
	return resp
}

// enrichGenerated envelopes and annotates every operation the generator produced.
func enrichGenerated(paths map[string]any, describe func(string) Operation) error {
	return eachOperation(paths, func(method, path string, op map[string]any) error {
		responses, err := objectAt(op, "responses")
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if ok, found := responses["200"].(map[string]any); found {
			if schema, has := ok["schema"]; has {
				ok["schema"] = envelope(schema)
			}
		}
		addErrorResponses(responses, !isPublic(op))
		if id, _ := op["operationId"].(string); id != "" && describe != nil {
			d := describe(id)
			if d.MinRole != "" {
				setMinRole(op, d.MinRole)
			}
			if ok, found := responses["200"]; found && d.Accepted {
				delete(responses, "200")
				responses["202"] = ok
			}
			if len(d.Events) > 0 {
				describeEventStream(op, responses, d.Events)
			}
		}
		return nil
	})
}

// eachOperation calls fn for every operation of paths, in sorted order, skipping the
// non-operation keys a path item may hold (parameters, $ref, extensions).
func eachOperation(paths map[string]any, fn func(method, path string, op map[string]any) error) error {
	for _, path := range sortedKeys(paths) {
		item, ok := paths[path].(map[string]any)
		if !ok {
			return fmt.Errorf("path %s: not an object", path)
		}
		for _, key := range sortedKeys(item) {
			if !isMethod(key) {
				continue
			}
			op, ok := item[key].(map[string]any)
			if !ok {
				return fmt.Errorf("%s %s: operation is not an object", strings.ToUpper(key), path)
			}
			if err := fn(strings.ToUpper(key), path, op); err != nil {
				return err
			}
		}
	}
	return nil
}

// describeEventStream turns a generated streaming operation (grpc-gateway would answer
// newline-delimited JSON) into the gateway's Server-Sent Events: the framing, and each
// kind of event with its schema, in x-nexusrag-sse-events.
func describeEventStream(op, responses map[string]any, events []Event) {
	var b strings.Builder
	b.WriteString(EventStreamFraming + "\n\nEvents:")
	kinds := make([]any, len(events))
	for i, e := range events {
		fmt.Fprintf(&b, "\n- `%s`: data is %s", e.Name, e.Definition)
		kinds[i] = map[string]any{"event": e.Name, "data": e.Definition}
	}
	op["produces"] = []any{"text/event-stream"}
	op[sseEventsExt] = kinds
	responses["200"] = map[string]any{"description": b.String(), "schema": map[string]any{"type": "string", "format": "event-stream"}}
}

func addErrorResponses(responses map[string]any, protected bool) {
	responses["default"] = errorResponse("An error, in the error envelope.")
	if !protected {
		return
	}
	responses["401"] = errorResponse("AUTH_MISSING, AUTH_INVALID or AUTH_REVOKED: no usable API key.")
	responses["403"] = errorResponse("FORBIDDEN: the key's role is below the operation's.")
}

func setMinRole(op map[string]any, role string) {
	op[minRoleExt] = role
	note := "Requires role " + role + " or higher."
	if desc, _ := op["description"].(string); desc != "" {
		note = desc + "\n\n" + note
	}
	op["description"] = note
}

// isPublic reports whether an operation overrides the global security with none.
func isPublic(op map[string]any) bool {
	sec, ok := op["security"].([]any)
	return ok && len(sec) == 0
}

func isMethod(key string) bool {
	switch key {
	case "get", "put", "post", "delete", "options", "head", "patch":
		return true
	}
	return false
}

func errorResponse(description string) map[string]any {
	return map[string]any{"description": description, "schema": ref(errorEnvelopeDef)}
}

func envelope(data any) map[string]any {
	return object(map[string]any{"data": data, "meta": ref(metaDef)})
}

func object(props map[string]any) map[string]any {
	return map[string]any{"type": "object", "properties": props}
}

func describedString(description string) map[string]any {
	return map[string]any{"type": "string", "description": description}
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/definitions/" + name} }

// objectAt returns m[key] as an object, creating it when absent.
func objectAt(m map[string]any, key string) (map[string]any, error) {
	v, present := m[key]
	if !present || v == nil {
		obj := map[string]any{}
		m[key] = obj
		return obj, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s is not an object", key)
	}
	return obj, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func anyList(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
