// Package apifuzz makes the requests of a schema-driven API fuzzer (in the spirit of
// Schemathesis) from the gateway's served OpenAPI 3 document: for every
// operation a valid request built from its parameters and body schema, then that request
// mutated one place at a time (NUL and invalid UTF-8 in every string, path and query
// parameter, overlong strings, boundary and overflowing numbers, wrong JSON types, deep
// nesting, duplicate keys, wrong or missing content types, truncated bodies, malformed
// multipart forms, odd headers), and on demand random combinations of those. It only
// makes requests: the caller sends them and judges the answers.
package apifuzz

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Case is one request.
type Case struct {
	// Route is the operation ("POST /v1/documents/text"), Name what was mutated.
	Route, Name string
	Method      string
	Path        string // with path parameters filled in and escaped
	Query       url.Values
	Header      http.Header
	Body        []byte
	// Write reports a method that may change state (the caller checks that a refused one
	// changed nothing).
	Write bool
}

// Fixtures are the values a valid request uses, by parameter or field name (ids of
// existing resources, mostly); names without one get a generic valid value.
type Fixtures map[string]string

// Operation is a route of the document, reduced to what the fuzzer needs.
type Operation struct {
	Method, Path string
	Params       []Param
	// Body is the JSON body's schema (nil: none); Form is set for multipart routes.
	Body map[string]any
	Form []Param
}

// Param is a path, query or form parameter.
type Param struct {
	Name, In, Type, Format string
}

// Operations reads the operations of an OpenAPI 3 document.
func Operations(doc []byte) ([]Operation, error) {
	var d struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("read the OpenAPI document: %w", err)
	}
	var ops []Operation
	for path, item := range d.Paths {
		for method, raw := range item {
			m := strings.ToUpper(method)
			switch m {
			case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			default:
				continue
			}
			var op struct {
				Parameters []struct {
					Name, In string
					Schema   struct{ Type, Format string }
				}
				RequestBody *struct {
					Content map[string]struct {
						Schema map[string]any
					}
				}
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("%s %s: %w", m, path, err)
			}
			o := Operation{Method: m, Path: path}
			for _, p := range op.Parameters {
				if p.In == "path" || p.In == "query" {
					o.Params = append(o.Params, Param{Name: p.Name, In: p.In, Type: p.Schema.Type, Format: p.Schema.Format})
				}
			}
			if op.RequestBody != nil {
				if form, ok := op.RequestBody.Content["multipart/form-data"]; ok {
					o.Form = formParams(resolve(form.Schema, d.Components.Schemas, 0))
				} else if body, ok := op.RequestBody.Content["application/json"]; ok {
					o.Body = resolve(body.Schema, d.Components.Schemas, 0)
				}
			}
			ops = append(ops, o)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].Path+ops[i].Method < ops[j].Path+ops[j].Method })
	return ops, nil
}

// formParams are the fields of a multipart body's schema, by name; a binary string is a
// file part.
func formParams(schema map[string]any) []Param {
	props, _ := schema["properties"].(map[string]any)
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)
	out := make([]Param, 0, len(names))
	for _, name := range names {
		prop, _ := props[name].(map[string]any)
		typ, _ := prop["type"].(string)
		format, _ := prop["format"].(string)
		if typ == "string" && format == "binary" {
			typ, format = "file", ""
		}
		out = append(out, Param{Name: name, In: "formData", Type: typ, Format: format})
	}
	return out
}

// resolve inlines $refs (to a bounded depth: recursive schemas stop as plain objects).
func resolve(schema map[string]any, defs map[string]map[string]any, depth int) map[string]any {
	if schema == nil {
		return nil
	}
	if ref, ok := schema["$ref"].(string); ok {
		def := defs[strings.TrimPrefix(ref, "#/components/schemas/")]
		if def == nil || depth > 6 {
			return map[string]any{"type": "object"}
		}
		return resolve(def, defs, depth+1)
	}
	out := map[string]any{}
	for k, v := range schema {
		out[k] = v
	}
	if props, ok := schema["properties"].(map[string]any); ok {
		resolved := map[string]any{}
		for name, p := range props {
			if pm, ok := p.(map[string]any); ok {
				resolved[name] = resolve(pm, defs, depth+1)
			}
		}
		out["properties"] = resolved
	}
	if items, ok := schema["items"].(map[string]any); ok {
		out["items"] = resolve(items, defs, depth+1)
	}
	return out
}

// Generator makes the cases of operations.
type Generator struct {
	fixtures Fixtures
	auth     string // the Authorization header of every case
}

// NewGenerator makes cases with fixtures, sending auth as Authorization.
func NewGenerator(fixtures Fixtures, auth string) *Generator {
	return &Generator{fixtures: fixtures, auth: auth}
}

// Cases are the valid request of op and every single mutation of it.
func (g *Generator) Cases(op Operation) []Case {
	base := g.valid(op)
	cases := []Case{base}
	add := func(name string, mutate func(c *Case)) {
		c := base.clone()
		c.Name = name
		mutate(&c)
		cases = append(cases, c)
	}
	for _, p := range op.Params {
		for _, m := range paramMutations(p) {
			add(p.In+" "+p.Name+": "+m.name, func(c *Case) { g.setParam(c, op, p, m.value) })
		}
	}
	if op.Body != nil {
		body := g.validBody(op.Body)
		for _, leaf := range leaves(op.Body, "") {
			for _, m := range valueMutations(leaf.kind) {
				add("body "+leaf.path+": "+m.name, func(c *Case) { c.Body = mustJSON(setAt(clone(body), leaf.keys, m.json)) })
			}
		}
		for _, m := range bodyMutations(body) {
			add("body: "+m.name, func(c *Case) {
				c.Body = m.body
				if m.contentType != "-" {
					c.Header.Set("Content-Type", m.contentType)
				} else {
					c.Header.Del("Content-Type")
				}
			})
		}
	}
	if op.Form != nil {
		for _, m := range formMutations(g.formFields(op)) {
			add("form: "+m.name, func(c *Case) {
				c.Body = m.body
				c.Header.Set("Content-Type", m.contentType)
			})
		}
	}
	for _, m := range headerMutations() {
		add("header "+m.name, func(c *Case) { c.Header.Set(m.header, m.value) })
	}
	return cases
}

// Random combines n random mutations of op's valid request (several at once).
func (g *Generator) Random(op Operation, rng *rand.Rand, n int) []Case {
	single := g.Cases(op)[1:]
	if len(single) == 0 {
		return nil
	}
	out := make([]Case, 0, n)
	for range n {
		c := g.valid(op)
		var names []string
		for range 1 + rng.IntN(3) {
			m := single[rng.IntN(len(single))]
			names = append(names, m.Name)
			c = merge(c, m)
		}
		c.Name = "random: " + strings.Join(names, " + ")
		out = append(out, c)
	}
	return out
}

// merge applies what m changed relative to a valid request onto c.
func merge(c, m Case) Case {
	c.Path = m.Path
	for k, v := range m.Query {
		c.Query[k] = v
	}
	for k, v := range m.Header {
		c.Header[k] = v
	}
	if m.Body != nil {
		c.Body = m.Body
	}
	return c
}

func (c Case) clone() Case {
	out := c
	out.Query = url.Values{}
	for k, v := range c.Query {
		out.Query[k] = append([]string(nil), v...)
	}
	out.Header = c.Header.Clone()
	out.Body = append([]byte(nil), c.Body...)
	return out
}

func (g *Generator) valid(op Operation) Case {
	c := Case{Route: op.Method + " " + op.Path, Name: "valid", Method: op.Method, Query: url.Values{}, Header: http.Header{},
		Write: op.Method != http.MethodGet}
	c.Header.Set("Authorization", g.auth)
	path := op.Path
	for _, p := range op.Params {
		v := g.value(p.Name, p.Type, p.Format)
		if p.In == "path" {
			path = strings.Replace(path, "{"+p.Name+"}", url.PathEscape(v), 1)
		} else if g.fixtures[p.Name] != "" { // optional query parameters are sent when a fixture names them
			c.Query.Set(p.Name, v)
		}
	}
	c.Path = path
	switch {
	case op.Body != nil:
		c.Body = mustJSON(g.validBody(op.Body))
		c.Header.Set("Content-Type", "application/json")
	case op.Form != nil:
		form := formMutations(g.formFields(op))[0] // the valid form
		c.Body = form.body
		c.Header.Set("Content-Type", form.contentType)
	}
	return c
}

// setParam sets a path or query parameter to a raw (unescaped) value.
func (g *Generator) setParam(c *Case, op Operation, p Param, v string) {
	if p.In == "query" {
		c.Query.Set(p.Name, v)
		return
	}
	path := op.Path
	for _, q := range op.Params {
		if q.In != "path" {
			continue
		}
		val := g.value(q.Name, q.Type, q.Format)
		if q.Name == p.Name {
			val = v
		}
		path = strings.Replace(path, "{"+q.Name+"}", url.PathEscape(val), 1)
	}
	c.Path = path
}

// value is a valid value of a parameter or field: its fixture, or one of its type.
func (g *Generator) value(name, typ, format string) string {
	if v, ok := g.fixtures[name]; ok {
		return v
	}
	switch {
	case typ == "integer":
		return "1"
	case typ == "boolean":
		return "false"
	case format == "date-time":
		return "2026-01-01T00:00:00Z"
	}
	return "fuzz"
}

func (g *Generator) validBody(schema map[string]any) any {
	switch schema["type"] {
	case "object", nil:
		props, _ := schema["properties"].(map[string]any)
		obj := map[string]any{}
		for name, p := range props {
			pm, _ := p.(map[string]any)
			if v, ok := g.fixtures[name]; ok {
				obj[name] = typed(v, pm)
				continue
			}
			if pm["type"] == "object" || pm["properties"] != nil || pm["type"] == "array" {
				continue // optional structures: their mutations are the body mutations'
			}
		}
		return obj
	case "array":
		return []any{}
	}
	return nil
}

// typed turns a fixture into the JSON type its schema says.
func typed(v string, schema map[string]any) any {
	switch schema["type"] {
	case "integer", "number":
		var n json.Number = json.Number(v)
		return n
	case "boolean":
		return v == "true"
	case "object":
		var o any
		if json.Unmarshal([]byte(v), &o) == nil {
			return o
		}
	}
	return v
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // values built here always encode
	}
	return b
}

// CurlLine is the case as a shell line that replays it against base (bytes a shell
// cannot hold literally are escaped for printf).
func (c Case) CurlLine(base string) string {
	u := base + c.Path
	if len(c.Query) > 0 {
		u += "?" + c.Query.Encode()
	}
	var b strings.Builder
	if c.Body != nil {
		fmt.Fprintf(&b, "printf '%s' | ", printfEscape(c.Body))
	}
	fmt.Fprintf(&b, "curl -sS -X %s %s", c.Method, shellQuote(u))
	keys := make([]string, 0, len(c.Header))
	for k := range c.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := c.Header.Get(k)
		if k == "Authorization" {
			v = "Bearer $KEY"
			fmt.Fprintf(&b, " -H \"%s: %s\"", k, v)
			continue
		}
		fmt.Fprintf(&b, " -H %s", shellQuote(k+": "+v))
	}
	if c.Body != nil {
		b.WriteString(" --data-binary @-")
	}
	return b.String()
}

func printfEscape(body []byte) string {
	var b bytes.Buffer
	for _, c := range body {
		switch {
		case c == '\'':
			b.WriteString(`'\''`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '%':
			b.WriteString("%%")
		case c >= 0x20 && c < 0x7f:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, `\x%02x`, c)
		}
	}
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
