// Package redact removes secrets and content from free-form metadata before it is
// logged or stored: values under keys that name credentials or content become
// "[REDACTED]", at any depth.
package redact

import (
	"strings"
	"unicode"

	"google.golang.org/protobuf/types/known/structpb"
)

// Placeholder replaces every sensitive value.
const Placeholder = "[REDACTED]"

// sensitive are word sequences; a key is sensitive when its words contain one of them.
var sensitive = [][]string{
	{"api", "key"}, {"apikey"}, {"authorization"}, {"token"}, {"secret"}, {"password"}, {"text"}, {"content"},
}

// Sensitive reports whether a metadata key may hold a secret or content. Keys are split
// into words (on _ - . space and camelCase), so "access_token", "X-Api-Key" and
// "clientSecret" are sensitive while "context" and "tokens_used" are not.
func Sensitive(key string) bool {
	words := splitWords(key)
	for _, pattern := range sensitive {
		if containsRun(words, pattern) {
			return true
		}
	}
	return false
}

func containsRun(words, pattern []string) bool {
	for i := 0; i+len(pattern) <= len(words); i++ {
		match := true
		for j, p := range pattern {
			if words[i+j] != p {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

func splitWords(key string) []string {
	var words []string
	var cur []rune
	runes := []rune(key)
	flush := func() {
		if len(cur) > 0 {
			words = append(words, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	for i, r := range runes {
		switch {
		case r == '_' || r == '-' || r == '.' || unicode.IsSpace(r):
			flush()
			continue
		case unicode.IsUpper(r) && i > 0 && (unicode.IsLower(runes[i-1]) || (i+1 < len(runes) && unicode.IsLower(runes[i+1]) && unicode.IsUpper(runes[i-1]))):
			flush()
		}
		cur = append(cur, r)
	}
	flush()
	return words
}

// Map returns a redacted deep copy of m.
func Map(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if Sensitive(k) {
			out[k] = Placeholder
			continue
		}
		out[k] = value(v)
	}
	return out
}

func value(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return Map(t)
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = value(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(t))
		for k, s := range t {
			if Sensitive(k) {
				out[k] = Placeholder
			} else {
				out[k] = s
			}
		}
		return out
	}
	return v
}

// Struct returns a redacted copy of s.
func Struct(s *structpb.Struct) *structpb.Struct {
	if s == nil {
		return nil
	}
	out := &structpb.Struct{Fields: make(map[string]*structpb.Value, len(s.GetFields()))}
	for k, v := range s.GetFields() {
		if Sensitive(k) {
			out.Fields[k] = structpb.NewStringValue(Placeholder)
			continue
		}
		out.Fields[k] = structValue(v)
	}
	return out
}

func structValue(v *structpb.Value) *structpb.Value {
	switch k := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		return structpb.NewStructValue(Struct(k.StructValue))
	case *structpb.Value_ListValue:
		vals := make([]*structpb.Value, len(k.ListValue.GetValues()))
		for i, e := range k.ListValue.GetValues() {
			vals[i] = structValue(e)
		}
		return structpb.NewListValue(&structpb.ListValue{Values: vals})
	}
	return v
}
