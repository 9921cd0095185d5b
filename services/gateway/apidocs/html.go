package apidocs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strings"
)

// HTML renders a built document as one self-contained page (no external assets), so
// the docs work offline and behind any proxy. html/template escapes every value taken
// from the document.
func HTML(doc []byte) ([]byte, error) {
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse openapi document: %w", err)
	}
	ops, err := operationViews(d.Paths)
	if err != nil {
		return nil, err
	}
	view := pageView{Title: d.Info.Title, Intro: paragraphs(d.Info.Description), Ops: ops, Defs: definitionViews(d.Components.Schemas)}
	tmpl, err := template.New("docs").Parse(pageTemplate)
	if err != nil {
		return nil, fmt.Errorf("parse api docs template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, view); err != nil {
		return nil, fmt.Errorf("render api docs: %w", err)
	}
	return buf.Bytes(), nil
}

type document struct {
	Info struct {
		Title       string `json:"title"`
		Description string `json:"description"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]schema `json:"schemas"`
	} `json:"components"`
}

type operation struct {
	Summary     string             `json:"summary"`
	Description string             `json:"description"`
	Role        string             `json:"x-nexusrag-min-role"`
	Security    *[]json.RawMessage `json:"security"`
	Parameters  []parameter        `json:"parameters"`
	RequestBody *struct {
		Content map[string]media `json:"content"`
	} `json:"requestBody"`
	Responses map[string]response `json:"responses"`
}

type parameter struct {
	Name        string `json:"name"`
	In          string `json:"in"`
	Required    bool   `json:"required"`
	Description string `json:"description"`
	Schema      schema `json:"schema"`
}

type response struct {
	Description string           `json:"description"`
	Content     map[string]media `json:"content"`
}

type media struct {
	Schema *schema `json:"schema"`
}

type schema struct {
	Ref         string            `json:"$ref"`
	Type        string            `json:"type"`
	Format      string            `json:"format"`
	Description string            `json:"description"`
	Enum        []any             `json:"enum"`
	Items       *schema           `json:"items"`
	Properties  map[string]schema `json:"properties"`
	Required    []string          `json:"required"`
}

type pageView struct {
	Title string
	Intro []string
	Ops   []operationView
	Defs  []defView
}

type operationView struct {
	Anchor, Method, Path, Summary, Access, Consumes, Produces string
	Description                                               []string
	Params                                                    []paramView
	Request                                                   typeRef
	Responses                                                 []responseView
}

// typeRef is a schema named for a reader; Def, when set, is the definition to link to.
type typeRef struct{ Text, Def string }

type paramView struct {
	Name, In, Description string
	Type                  typeRef
	Required              bool
}

type responseView struct {
	Status, Description string
	Schema              typeRef
}

type defView struct {
	Name, Description string
	Props             []propView
}

type propView struct {
	Name, Description string
	Type              typeRef
	Required          bool
}

func operationViews(paths map[string]map[string]json.RawMessage) ([]operationView, error) {
	var views []operationView
	for path, item := range paths {
		for key, raw := range item {
			if !isMethod(key) {
				continue
			}
			var op operation
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("parse operation %s %s: %w", strings.ToUpper(key), path, err)
			}
			views = append(views, opView(strings.ToUpper(key), path, op))
		}
	}
	sort.Slice(views, func(i, j int) bool {
		if views[i].Path != views[j].Path {
			return views[i].Path < views[j].Path
		}
		return views[i].Method < views[j].Method
	})
	setAnchors(views)
	return views, nil
}

// setAnchors gives each operation a readable, unique fragment id ("op-GET-v1-api-keys-key_id").
func setAnchors(views []operationView) {
	taken := map[string]bool{}
	for i := range views {
		base := "op-" + views[i].Method + strings.Map(anchorRune, views[i].Path)
		anchor := base
		for n := 2; taken[anchor]; n++ {
			anchor = fmt.Sprintf("%s-%d", base, n)
		}
		taken[anchor] = true
		views[i].Anchor = anchor
	}
}

func anchorRune(r rune) rune {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-':
		return r
	case r == '{' || r == '}':
		return -1
	}
	return '-'
}

func opView(method, path string, op operation) operationView {
	v := operationView{
		Method: method, Path: path, Summary: op.Summary, Description: paragraphs(op.Description),
		Access: access(op), Produces: strings.Join(successTypes(op.Responses), ", "),
	}
	if op.RequestBody != nil {
		v.Consumes = strings.Join(sortedKeys(op.RequestBody.Content), ", ")
		if s := mainSchema(op.RequestBody.Content); s != nil && !isForm(sortedKeys(op.RequestBody.Content)) {
			v.Request = typeName(*s)
		} else if s != nil {
			v.Params = append(v.Params, formParams(*s)...)
		}
	}
	params := make([]paramView, 0, len(op.Parameters))
	for _, p := range op.Parameters {
		params = append(params, paramView{Name: p.Name, In: p.In, Description: p.Description, Required: p.Required, Type: typeName(p.Schema)})
	}
	v.Params = append(params, v.Params...)
	for _, status := range responseOrder(op.Responses) {
		r := op.Responses[status]
		rv := responseView{Status: status, Description: r.Description}
		if s := mainSchema(r.Content); s != nil {
			rv.Schema = typeName(*s)
		}
		v.Responses = append(v.Responses, rv)
	}
	return v
}

// mainSchema is the schema of a body: its JSON one when it has one, else the first by
// content type.
func mainSchema(content map[string]media) *schema {
	if m, ok := content["application/json"]; ok && m.Schema != nil {
		return m.Schema
	}
	for _, ct := range sortedKeys(content) {
		if s := content[ct].Schema; s != nil {
			return s
		}
	}
	return nil
}

// formParams lists a form body's fields as parameters "in" formData, as a reader of a
// form expects them.
func formParams(s schema) []paramView {
	required := requiredSet(s.Required)
	out := make([]paramView, 0, len(s.Properties))
	for _, name := range sortedKeys(s.Properties) {
		p := s.Properties[name]
		out = append(out, paramView{Name: name, In: "formData", Description: p.Description, Required: required[name], Type: typeName(p)})
	}
	return out
}

// successTypes are the content types of an operation's 2xx answers.
func successTypes(responses map[string]response) []string {
	seen := map[string]bool{}
	for status, r := range responses {
		if strings.HasPrefix(status, "2") {
			for ct := range r.Content {
				seen[ct] = true
			}
		}
	}
	return sortedKeys(seen)
}

func access(op operation) string {
	switch {
	case op.Security != nil && len(*op.Security) == 0:
		return "public"
	case op.Role != "":
		return op.Role + " or higher"
	}
	return "any valid API key"
}

// responseOrder sorts statuses numerically (they are three digits) with default last.
func responseOrder(responses map[string]response) []string {
	statuses := sortedKeys(responses)
	sort.SliceStable(statuses, func(i, j int) bool { return statuses[j] == "default" && statuses[i] != "default" })
	return statuses
}

func definitionViews(defs map[string]schema) []defView {
	views := make([]defView, 0, len(defs))
	for _, name := range sortedKeys(defs) {
		s := defs[name]
		required := requiredSet(s.Required)
		dv := defView{Name: name, Description: s.Description}
		for _, prop := range sortedKeys(s.Properties) {
			ps := s.Properties[prop]
			dv.Props = append(dv.Props, propView{Name: prop, Description: ps.Description, Type: typeName(ps), Required: required[prop]})
		}
		views = append(views, dv)
	}
	return views
}

// typeName names a schema for a reader: a definition, an envelope or array of one, or
// a primitive type with its format and allowed values.
func typeName(s schema) typeRef {
	switch {
	case s.Ref != "":
		name := strings.TrimPrefix(s.Ref, componentsPrefix)
		return typeRef{Text: name, Def: name}
	case s.Type == "array" && s.Items != nil:
		inner := typeName(*s.Items)
		return typeRef{Text: "array of " + inner.Text, Def: inner.Def}
	case isEnvelope(s):
		inner := typeName(s.Properties["data"])
		return typeRef{Text: "envelope of " + inner.Text, Def: inner.Def}
	}
	text := s.Type
	if text == "" {
		text = "object"
	}
	if s.Format != "" {
		text += " (" + s.Format + ")"
	}
	if len(s.Enum) > 0 {
		text += ": one of " + joinValues(s.Enum)
	}
	return typeRef{Text: text}
}

func isEnvelope(s schema) bool {
	meta, ok := s.Properties["meta"]
	_, hasData := s.Properties["data"]
	return ok && hasData && meta.Ref == componentsPrefix+metaDef
}

func joinValues(values []any) string {
	parts := make([]string, len(values))
	for i, v := range values {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ", ")
}

// paragraphs splits text on blank lines; line breaks inside a paragraph are kept by CSS.
func paragraphs(text string) []string {
	var out []string
	for _, p := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

const pageTemplate = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:62rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
.intro p,.desc p{white-space:pre-wrap}
section{border-top:1px solid #ddd;padding:.5rem 0}
h3{margin:.5rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;font-family:monospace}
code,.p{font-family:monospace}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left;vertical-align:top}
.a{color:#6a4c93;font-weight:bold}
ul.toc{list-style:none;padding:0;font-family:monospace}
</style></head><body>
<h1>{{.Title}}</h1>
<p>Machine-readable document: <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 3.0).</p>
<div class="intro">{{range .Intro}}<p>{{.}}</p>
{{end}}</div>
<h2>Operations</h2>
<ul class="toc">{{range .Ops}}<li><a href="#{{.Anchor}}">{{.Method}} {{.Path}}</a> {{.Summary}}</li>
{{end}}</ul>
{{range .Ops}}<section id="{{.Anchor}}">
<h3><span class="m">{{.Method}}</span> <span class="p">{{.Path}}</span></h3>
{{if .Summary}}<p>{{.Summary}}</p>{{end}}<div class="desc">{{range .Description}}<p>{{.}}</p>{{end}}</div>
<p>Access: <span class="a">{{.Access}}</span>{{if .Consumes}} · Consumes: {{.Consumes}}{{end}}{{if .Produces}} · Produces: {{.Produces}}{{end}}</p>
{{if .Params}}<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td>{{template "type" .Type}}</td><td>{{if .Required}}yes{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}
{{if .Request.Text}}<p>Request body: {{template "type" .Request}}</p>{{end}}
<table><tr><th>status</th><th>description</th><th>schema</th></tr>
{{range .Responses}}<tr><td>{{.Status}}</td><td>{{.Description}}</td><td>{{template "type" .Schema}}</td></tr>
{{end}}</table>
</section>
{{end}}
<h2>Definitions</h2>
{{range .Defs}}<section id="def-{{.Name}}"><h3 class="p">{{.Name}}</h3>
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Props}}<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>
{{range .Props}}<tr><td><code>{{.Name}}</code></td><td>{{template "type" .Type}}</td><td>{{if .Required}}yes{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}</section>
{{end}}
</body></html>
{{define "type"}}{{if .Def}}<a href="#def-{{.Def}}">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{end}}`
