package apidocs

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// addRoutes documents the gateway's own routes; a route the generator already
// documents is an error, since two handlers cannot serve one (method, path).
func addRoutes(paths map[string]any, extra []Route) error {
	for _, r := range extra {
		if err := validate(r); err != nil {
			return fmt.Errorf("extra route %s %s: %w", r.Method, r.Path, err)
		}
		item, err := objectAt(paths, r.Path)
		if err != nil {
			return fmt.Errorf("extra route %s %s: path item: %w", r.Method, r.Path, err)
		}
		method := strings.ToLower(r.Method)
		if _, taken := item[method]; taken {
			return fmt.Errorf("extra route %s %s: already documented", r.Method, r.Path)
		}
		item[method] = routeOperation(r)
	}
	return nil
}

func validate(r Route) error {
	switch {
	case !isMethod(strings.ToLower(r.Method)):
		return fmt.Errorf("unsupported method %q", r.Method)
	case !strings.HasPrefix(r.Path, "/"):
		return fmt.Errorf("path must start with /")
	case r.Public && r.MinRole != "":
		return fmt.Errorf("a public route has no role, got %q", r.MinRole)
	}
	switch r.MinRole {
	case "", "reader", "editor", "admin":
	default:
		return fmt.Errorf("unknown role %q (want reader, editor or admin)", r.MinRole)
	}
	for status := range r.Responses {
		if !validStatus(status) {
			return fmt.Errorf("response status %q is neither an HTTP status nor default", status)
		}
	}
	return nil
}

// isErrorStatus reports whether a (validated) status answers in the error envelope.
func isErrorStatus(s string) bool {
	n, err := strconv.Atoi(s)
	return s == "default" || (err == nil && n >= 400)
}

func validStatus(s string) bool {
	if s == "default" {
		return true
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= 100 && n <= 599
}

func routeOperation(r Route) map[string]any {
	op := map[string]any{"responses": routeResponses(r)}
	setIfNotEmpty(op, "operationId", r.OperationID)
	setIfNotEmpty(op, "summary", r.Summary)
	setIfNotEmpty(op, "description", r.Description)
	setListIfNotEmpty(op, "tags", r.Tags)
	setListIfNotEmpty(op, "consumes", r.RequestContentTypes)
	setListIfNotEmpty(op, "produces", r.ResponseContentTypes)
	if params := append(pathParameters(r.Path), requestParameters(r)...); len(params) > 0 {
		op["parameters"] = params
	}
	if r.Public {
		op["security"] = []any{}
	}
	if r.MinRole != "" {
		setMinRole(op, r.MinRole)
	}
	return op
}

func routeResponses(r Route) map[string]any {
	ok := map[string]any{"description": "Success."}
	switch {
	case r.ResponseSchema != nil && isJSON(r.ResponseContentTypes):
		ok["schema"] = envelope(r.ResponseSchema)
	case r.ResponseSchema != nil:
		ok["schema"] = r.ResponseSchema
	case !isJSON(r.ResponseContentTypes):
		// The body as sent (a page, a document, audio): without a schema OpenAPI 3 would
		// not name its content type at all.
		ok["schema"] = map[string]any{"type": "string", "format": "binary"}
	}
	success := r.SuccessStatus
	if success == "" {
		success = "200"
	}
	responses := map[string]any{success: ok}
	addErrorResponses(responses, !r.Public)
	for status, desc := range r.Responses {
		resp := map[string]any{"description": desc}
		if isErrorStatus(status) {
			resp["schema"] = ref(errorEnvelopeDef)
		}
		responses[status] = resp
	}
	return responses
}

// isJSON reports whether a route answers JSON, hence in the envelope.
func isJSON(contentTypes []string) bool {
	if len(contentTypes) == 0 {
		return true
	}
	for _, ct := range contentTypes {
		if ct == "application/json" {
			return true
		}
	}
	return false
}

// pathParameters documents each {name} of a path template as a required string.
func pathParameters(path string) []any {
	var params []any
	for rest := path; ; {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			return params
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return params
		}
		name := rest[open+1 : open+end]
		params = append(params, map[string]any{"name": name, "in": "path", "required": true, "type": "string"})
		rest = rest[open+end+1:]
	}
}

// requestParameters documents the request body: one body parameter for JSON, one
// formData parameter per property for multipart and URL-encoded forms (Swagger 2.0
// cannot describe those as a body schema).
func requestParameters(r Route) []any {
	if r.RequestSchema == nil {
		return nil
	}
	if !isForm(r.RequestContentTypes) {
		return []any{map[string]any{"name": "body", "in": "body", "required": true, "schema": r.RequestSchema}}
	}
	props, _ := r.RequestSchema["properties"].(map[string]any)
	required := requiredSet(r.RequestSchema["required"])
	params := make([]any, 0, len(props))
	for _, name := range sortedKeys(props) {
		params = append(params, formParameter(name, props[name], required[name]))
	}
	return params
}

func formParameter(name string, prop any, required bool) map[string]any {
	p := map[string]any{"name": name, "in": "formData", "required": required, "type": "string"}
	schema, _ := prop.(map[string]any)
	for _, key := range []string{"type", "format", "description", "enum", "items", "default"} {
		if v, ok := schema[key]; ok {
			p[key] = v
		}
	}
	return p
}

func isForm(contentTypes []string) bool {
	for _, ct := range contentTypes {
		if ct == "multipart/form-data" || ct == "application/x-www-form-urlencoded" {
			return true
		}
	}
	return false
}

// requiredSet reads a schema's "required" list, whether built as []string in Go or
// decoded as []any from JSON.
func requiredSet(v any) map[string]bool {
	var names []string
	switch list := v.(type) {
	case []string:
		names = list
	case []any:
		for _, n := range list {
			if s, ok := n.(string); ok {
				names = append(names, s)
			}
		}
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set
}

func setIfNotEmpty(m map[string]any, key, value string) {
	if value != "" {
		m[key] = value
	}
}

func setListIfNotEmpty(m map[string]any, key string, values []string) {
	if len(values) > 0 {
		m[key] = anyList(values)
	}
}

// Paths lists every (method, path template) of a built document, sorted by path then
// method, with whether the operation is public (security: []).
func Paths(doc []byte) ([]RouteInfo, error) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse openapi document: %w", err)
	}
	var out []RouteInfo
	for path, item := range d.Paths {
		for key, raw := range item {
			if !isMethod(key) {
				continue
			}
			var op struct {
				Security *[]json.RawMessage `json:"security"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("parse operation %s %s: %w", strings.ToUpper(key), path, err)
			}
			public := op.Security != nil && len(*op.Security) == 0
			out = append(out, RouteInfo{Method: strings.ToUpper(key), Path: path, Public: public})
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
