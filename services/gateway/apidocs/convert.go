package apidocs

import (
	"encoding/json"
	"fmt"

	"github.com/getkin/kin-openapi/openapi2"
	"github.com/getkin/kin-openapi/openapi2conv"
)

// componentsPrefix is where OpenAPI 3 keeps the definitions of Swagger 2.0.
const componentsPrefix = "#/components/schemas/"

// toV3 converts the enriched Swagger 2.0 document to OpenAPI 3.0 with kin-openapi, then
// says in 3.0's own terms what 2.0 could not: bearer authentication as an HTTP scheme,
// and the schema each event of a stream carries.
func toV3(v2 []byte) ([]byte, error) {
	var doc2 openapi2.T
	if err := json.Unmarshal(v2, &doc2); err != nil {
		return nil, fmt.Errorf("parse the enriched openapi 2.0 document: %w", err)
	}
	doc3, err := openapi2conv.ToV3(&doc2)
	if err != nil {
		return nil, fmt.Errorf("convert the openapi document to 3.0: %w", err)
	}
	raw, err := json.Marshal(doc3)
	if err != nil {
		return nil, fmt.Errorf("encode the openapi 3.0 document: %w", err)
	}
	// Back to plain values: the output is then indented with sorted keys whatever order
	// the converter writes in, and the fix-ups below work on JSON, as buildV2 does.
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("decode the openapi 3.0 document: %w", err)
	}
	dropConverterNotes(doc)
	components, err := objectAt(doc, "components")
	if err != nil {
		return nil, fmt.Errorf("openapi 3.0 document: %w", err)
	}
	components["securitySchemes"] = map[string]any{"bearer": map[string]any{
		"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <api key>",
	}}
	paths, err := objectAt(doc, "paths")
	if err != nil {
		return nil, fmt.Errorf("openapi 3.0 document: %w", err)
	}
	err = eachOperation(paths, func(method, path string, op map[string]any) error {
		if err := errorsAsJSON(op); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		events, _ := op[sseEventsExt].([]any)
		for _, e := range events {
			if kind, ok := e.(map[string]any); ok {
				if name, _ := kind["data"].(string); name != "" {
					kind["data"] = componentsPrefix + name
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode openapi document: %w", err)
	}
	return out, nil
}

// errorsAsJSON gives every error answer of op the one content type errors have,
// application/json: Swagger 2.0 has one list of content types per operation, so the
// converter gives an error of a stream or a download the success's type.
func errorsAsJSON(op map[string]any) error {
	responses, err := objectAt(op, "responses")
	if err != nil {
		return err
	}
	for status, r := range responses {
		resp, ok := r.(map[string]any)
		if !ok || !isErrorStatus(status) {
			continue
		}
		content, _ := resp["content"].(map[string]any)
		var schema any
		for _, ct := range sortedKeys(content) {
			if media, ok := content[ct].(map[string]any); ok && media["schema"] != nil {
				schema = media["schema"]
				break
			}
		}
		if schema != nil {
			resp["content"] = map[string]any{"application/json": map[string]any{"schema": schema}}
		}
	}
	return nil
}

// converterNotes are what openapi2conv writes to find its way back to 2.0; a 3.0 reader
// has no use for them.
var converterNotes = []string{"x-formData-name", "x-originalParamName"}

// dropConverterNotes removes the converter's notes from v, at any depth.
func dropConverterNotes(v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range converterNotes {
			delete(v, k)
		}
		for _, child := range v {
			dropConverterNotes(child)
		}
	case []any:
		for _, child := range v {
			dropConverterNotes(child)
		}
	}
}
