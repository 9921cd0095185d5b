package apifuzz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

type paramMutation struct{ name, value string }

// paramMutations are the values a path or query parameter is given, raw (escaping is
// the request's): the bytes no service can store, lengths, and the type's edges.
func paramMutations(p Param) []paramMutation {
	out := []paramMutation{
		{"NUL", "a\x00b"},
		{"invalid UTF-8", "a\xffb"},
		{"percent-escaped garbage", "%ff%00"},
		{"overlong", strings.Repeat("x", 70_000)},
		{"empty", ""},
		{"unicode", "ünïcødé-😀-עברית"},
		{"dots", ".."},
		{"slash", "a/b"},
		{"spaces", "  "},
	}
	switch p.Type {
	case "integer":
		out = append(out, paramMutation{"zero", "0"}, paramMutation{"negative", "-1"}, paramMutation{"int32 overflow", "2147483648"},
			paramMutation{"int64 overflow", "9223372036854775808"}, paramMutation{"fraction", "1.5"}, paramMutation{"not a number", "ten"},
			paramMutation{"exponent", "1e309"})
	case "boolean":
		out = append(out, paramMutation{"not a boolean", "yes"}, paramMutation{"number", "2"})
	}
	if p.Format == "date-time" {
		out = append(out, paramMutation{"not a time", "yesterday"}, paramMutation{"year 0", "0000-01-01T00:00:00Z"},
			paramMutation{"year 9999", "9999-12-31T23:59:59Z"}, paramMutation{"offset", "2026-01-01T00:00:00+14:00"})
	}
	return out
}

type valueMutation struct {
	name string
	json any // a JSON value (json.RawMessage for what Go cannot build)
}

// valueMutations are the JSON values a body field is given.
func valueMutations(kind string) []valueMutation {
	out := []valueMutation{
		{"NUL", "a\x00b"},
		{"escaped NUL", json.RawMessage(`"a\u0000b"`)},
		{"invalid UTF-8", json.RawMessage("\"a\xffb\"")},
		{"lone surrogate escape", json.RawMessage(`"\ud800"`)},
		{"overlong", strings.Repeat("x", 70_000)},
		{"empty string", ""},
		{"unicode", "ünïcødé-😀-עברית"},
		{"null", nil},
		{"object", map[string]any{"a": 1}},
		{"array", []any{1, "a"}},
		{"number", 1},
		{"boolean", true},
	}
	switch kind {
	case "integer", "number":
		out = append(out, valueMutation{"zero", 0}, valueMutation{"negative", -1},
			valueMutation{"int32 overflow", json.RawMessage("2147483648")}, valueMutation{"int64 overflow", json.RawMessage("9223372036854775808")},
			valueMutation{"fraction", 1.5}, valueMutation{"huge", json.RawMessage("1e309")}, valueMutation{"numeric string", "12"})
	case "object":
		out = append(out, valueMutation{"deep object", deep(200)}, valueMutation{"NUL key", map[string]any{"a\x00": "b"}},
			valueMutation{"NUL in nested value", map[string]any{"retrieval": map[string]any{"provider": "local\x00pgvector"}}})
	}
	return out
}

// deep is an object nested n levels.
func deep(n int) any {
	var v any = "leaf"
	for range n {
		v = map[string]any{"a": v}
	}
	return v
}

// leaf is a scalar field of a body schema.
type leaf struct {
	keys []string
	path string
	kind string
}

// leaves lists the fields of a body schema (nested objects' fields included).
func leaves(schema map[string]any, prefix string) []leaf {
	props, _ := schema["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)
	var out []leaf
	for _, name := range names {
		p, _ := props[name].(map[string]any)
		path := strings.TrimPrefix(prefix+"."+name, ".")
		kind, _ := p["type"].(string)
		if kind == "" {
			kind = "object"
		}
		if nested, ok := p["properties"].(map[string]any); ok && len(nested) > 0 {
			for _, l := range leaves(p, path) {
				out = append(out, leaf{keys: append([]string{name}, l.keys...), path: l.path, kind: l.kind})
			}
			continue
		}
		out = append(out, leaf{keys: []string{name}, path: path, kind: kind})
	}
	return out
}

func clone(v any) any {
	var out any
	_ = json.Unmarshal(mustJSON(v), &out)
	return out
}

// setAt sets the value at keys in body (an object), creating objects on the way.
func setAt(body any, keys []string, v any) any {
	obj, ok := body.(map[string]any)
	if !ok {
		obj = map[string]any{}
	}
	if len(keys) == 1 {
		obj[keys[0]] = v
		return obj
	}
	obj[keys[0]] = setAt(obj[keys[0]], keys[1:], v)
	return obj
}

type bodyMutation struct {
	name        string
	body        []byte
	contentType string // "-": none
}

// bodyMutations break the JSON body as a whole.
func bodyMutations(valid any) []bodyMutation {
	b := mustJSON(valid)
	firstKey := ""
	if obj, ok := valid.(map[string]any); ok {
		for k := range obj {
			if firstKey == "" || k < firstKey {
				firstKey = k
			}
		}
	}
	dup := []byte(`{"a":1,"a":2}`)
	if firstKey != "" {
		dup = []byte(fmt.Sprintf(`{%q:"one",%q:"two"}`, firstKey, firstKey))
	}
	return []bodyMutation{
		{"truncated", b[:len(b)/2], "application/json"},
		{"empty", nil, "application/json"},
		{"null", []byte("null"), "application/json"},
		{"array", []byte("[]"), "application/json"},
		{"string", []byte(`"text"`), "application/json"},
		{"trailing garbage", append(append([]byte{}, b...), "}}}"...), "application/json"},
		{"duplicate keys", dup, "application/json"},
		{"unknown field", []byte(`{"no_such_field":1}`), "application/json"},
		{"deep nesting", []byte(strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000)), "application/json"},
		{"deep arrays", []byte(strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)), "application/json"},
		{"invalid UTF-8", []byte("{\"\xff\":1}"), "application/json"},
		{"NUL byte", []byte("{\"a\x00\":1}"), "application/json"},
		{"text/plain", b, "text/plain"},
		{"no content type", b, "-"},
		{"form content type", b, "application/x-www-form-urlencoded"},
		{"latin-1 charset", b, "application/json; charset=iso-8859-1"},
		{"malformed content type", b, "application/json; ;;="},
	}
}

type formField struct{ name, value string }

// formFields are the text fields of a valid multipart form, from the fixtures.
func (g *Generator) formFields(op Operation) []formField {
	var out []formField
	for _, p := range op.Form {
		if p.Type == "file" {
			continue
		}
		if v, ok := g.fixtures[p.Name]; ok {
			out = append(out, formField{p.Name, v})
		}
	}
	return out
}

const boundary = "fuzzboundary"

// form builds a multipart body of fields and one file part (none when file is nil).
func form(fields []formField, fileHeader string, file []byte) []byte {
	var b bytes.Buffer
	for _, f := range fields {
		fmt.Fprintf(&b, "--%s\r\nContent-Disposition: form-data; name=%q\r\n\r\n%s\r\n", boundary, f.name, f.value)
	}
	if file != nil {
		fmt.Fprintf(&b, "--%s\r\n%s\r\n\r\n", boundary, fileHeader)
		b.Write(file)
		b.WriteString("\r\n")
	}
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

type formMutation struct {
	name        string
	body        []byte
	contentType string
}

// formMutations are multipart uploads, the first one valid.
func formMutations(fields []formField) []formMutation {
	ct := "multipart/form-data; boundary=" + boundary
	md := `Content-Disposition: form-data; name="file"; filename="fuzz.md"` + "\r\nContent-Type: text/markdown"
	valid := form(fields, md, []byte("# Fuzz\n\nA valid document."))
	with := func(extra ...formField) []formField { return append(append([]formField{}, fields...), extra...) }
	// Two file parts: the closing delimiter of the first form becomes a second file.
	twoFiles := bytes.Replace(form(fields, md, []byte("one")), []byte("--"+boundary+"--\r\n"), form(nil, md, []byte("two")), 1)
	out := []formMutation{
		{"valid", valid, ct},
		{"file with NUL", form(fields, md, []byte("text\x00more")), ct},
		{"file in latin-1", form(fields, md, []byte("caf\xe9")), ct},
		{"file in UTF-16 with a mark", form(fields, md, []byte{0xFF, 0xFE, 'h', 0, 'i', 0}), ct},
		{"file in odd UTF-16", form(fields, md, []byte{0xFF, 0xFE, 'h'}), ct},
		{"binary file", form(fields, `Content-Disposition: form-data; name="file"; filename="x.png"`+"\r\nContent-Type: image/png", []byte("\x89PNG\r\n\x1a\n\x00\x00")), ct},
		{"file without type or extension", form(fields, `Content-Disposition: form-data; name="file"; filename="x"`, []byte("hi")), ct},
		{"JSON file with NUL", form(fields, `Content-Disposition: form-data; name="file"; filename="x.json"`+"\r\nContent-Type: application/json", []byte(`{"text":"a\u0000b"}`)), ct},
		{"JSON file not an object", form(fields, `Content-Disposition: form-data; name="file"; filename="x.json"`+"\r\nContent-Type: application/json", []byte(`[1]`)), ct},
		{"empty file", form(fields, md, []byte{}), ct},
		{"no file", form(fields, "", nil), ct},
		{"two files", twoFiles, ct},
		{"unknown field", form(with(formField{"nope", "1"}), md, []byte("x")), ct},
		{"NUL in a field", form(with(formField{"document_id", "a\x00b"}), md, []byte("x")), ct},
		{"invalid UTF-8 in a field", form(with(formField{"filename", "a\xffb"}), md, []byte("x")), ct},
		{"overlong field", form(with(formField{"filename", strings.Repeat("f", 10_000)}), md, []byte("x")), ct},
		{"bad number", form(with(formField{"chunk_size_chars", "lots"}), md, []byte("x")), ct},
		{"truncated", valid[:len(valid)/2], ct},
		{"no boundary", valid, "multipart/form-data"},
		{"wrong boundary", valid, "multipart/form-data; boundary=other"},
		{"unsupported charset", form(fields, md+"; charset=iso-8859-1", []byte("x")), ct},
	}
	return out
}

type headerMutation struct{ name, header, value string }

// headerMutations are odd values of the headers the gateway reads (net/http refuses to
// send control characters, so these are what a client can send).
func headerMutations() []headerMutation {
	return []headerMutation{
		{"X-Request-Id overlong", "X-Request-Id", strings.Repeat("r", 8_000)},
		{"X-Request-Id non-ASCII", "X-Request-Id", "id-\xe9\xff"},
		{"Idempotency-Key overlong", "Idempotency-Key", strings.Repeat("k", 500)},
		{"Idempotency-Key non-ASCII", "Idempotency-Key", "clé-\xff"},
		{"Authorization garbage", "Authorization", "Bearer \xff\xfe"},
		{"Authorization scheme", "Authorization", "Basic Zm9vOmJhcg=="},
		{"Accept xml", "Accept", "application/xml"},
		{"Last-Event-ID", "Last-Event-ID", "\xff"},
		{"traceparent garbage", "traceparent", "00-zz-zz-01"},
		{"Content-Type garbage", "Content-Type", "\xff/\xfe"},
	}
}
