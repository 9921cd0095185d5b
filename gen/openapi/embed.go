// Package openapi embeds the OpenAPI (Swagger 2.0) document generated from proto/ by
// protoc-gen-openapiv2. This file is written by hand; `make proto` rewrites the JSON.
package openapi

import _ "embed"

// Spec is the merged OpenAPI document of every HTTP-mapped gRPC method.
//
//go:embed nexusrag.swagger.json
var Spec []byte
