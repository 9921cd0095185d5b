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
// the docs work offline and behind any proxy.
func HTML(doc []byte) ([]byte, error) {
	var d document
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("parse openapi document: %w", err)
	}
	view := pageView{Title: d.Info.Title, Intro: d.Info.Description}
	for path, item := range d.Paths {
		for method, op := range item {
			view.Ops = append(view.Ops, opView(strings.ToUpper(method), path, op))
		}
	}
	sort.Slice(view.Ops, func(i, j int) bool {
		if view.Ops[i].Path != view.Ops[j].Path {
			return view.Ops[i].Path < view.Ops[j].Path
		}
		return view.Ops[i].Method < view.Ops[j].Method
	})
	for name, s := range d.Definitions {
		dv := defView{Name: name}
		for prop, ps := range s.Properties {
			dv.Props = append(dv.Props, propView{Name: prop, Type: typeName(ps), Description: ps.Description})
		}
		sort.Slice(dv.Props, func(i, j int) bool { return dv.Props[i].Name < dv.Props[j].Name })
		view.Defs = append(view.Defs, dv)
	}
	sort.Slice(view.Defs, func(i, j int) bool { return view.Defs[i].Name < view.Defs[j].Name })
	var buf bytes.Buffer
	if err := page.Execute(&buf, view); err != nil {
		return nil, fmt.Errorf("render api docs: %w", err)
	}
	return buf.Bytes(), nil
}

type document struct {
	Info struct {
		Title       string `json:"title"`
		Description string `json:"description"`
	} `json:"info"`
	Paths       map[string]map[string]operation `json:"paths"`
	Definitions map[string]schema               `json:"definitions"`
}

type operation struct {
	Summary     string              `json:"summary"`
	Description string              `json:"description"`
	Role        string              `json:"x-nexusrag-min-role"`
	Security    *[]any              `json:"security"`
	Parameters  []parameter         `json:"parameters"`
	Responses   map[string]response `json:"responses"`
	Produces    []string            `json:"produces"`
}

type parameter struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Type        string  `json:"type"`
	Format      string  `json:"format"`
	Required    bool    `json:"required"`
	Description string  `json:"description"`
	Schema      *schema `json:"schema"`
}

type response struct {
	Description string  `json:"description"`
	Schema      *schema `json:"schema"`
}

type schema struct {
	Ref         string            `json:"$ref"`
	Type        string            `json:"type"`
	Format      string            `json:"format"`
	Description string            `json:"description"`
	Title       string            `json:"title"`
	Items       *schema           `json:"items"`
	Properties  map[string]schema `json:"properties"`
}

type pageView struct {
	Title, Intro string
	Ops          []operationView
	Defs         []defView
}

type operationView struct {
	Method, Path, Summary, Description, Access, Request, Response, Produces string
	Params                                                                  []parameter
}

type defView struct {
	Name  string
	Props []propView
}

type propView struct{ Name, Type, Description string }

func opView(method, path string, op operation) operationView {
	v := operationView{Method: method, Path: path, Summary: op.Summary, Description: op.Description, Produces: strings.Join(op.Produces, ", ")}
	switch {
	case op.Security != nil && len(*op.Security) == 0:
		v.Access = "public"
	case op.Role != "":
		v.Access = op.Role + " or higher"
	default:
		v.Access = "authenticated"
	}
	for _, p := range op.Parameters {
		if p.In == "body" {
			v.Request = typeName(deref(p.Schema))
			continue
		}
		v.Params = append(v.Params, p)
	}
	if ok, found := op.Responses["200"]; found && ok.Schema != nil {
		v.Response = typeName(*ok.Schema)
	}
	return v
}

func deref(s *schema) schema {
	if s == nil {
		return schema{}
	}
	return *s
}

// typeName names a schema for a reader: a definition, an envelope of one, or a type.
func typeName(s schema) string {
	switch {
	case s.Ref != "":
		return strings.TrimPrefix(s.Ref, "#/definitions/")
	case s.Type == "array" && s.Items != nil:
		return "array of " + typeName(*s.Items)
	case s.Properties["data"].Ref != "" || s.Properties["data"].Type != "":
		return "envelope of " + typeName(s.Properties["data"])
	case s.Format != "":
		return s.Type + " (" + s.Format + ")"
	case s.Type != "":
		return s.Type
	}
	return "object"
}

var page = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
pre{background:#f4f5f7;padding:1rem;white-space:pre-wrap}
section{border-top:1px solid #ddd;padding:.5rem 0}
.m{display:inline-block;min-width:4.5rem;font-weight:bold;font-family:monospace}
code,.p{font-family:monospace}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
.a{color:#6a4c93}
</style></head><body>
<h1>{{.Title}}</h1>
<p>Machine-readable: <a href="/v1/openapi.json">/v1/openapi.json</a> (OpenAPI 2.0).</p>
<pre>{{.Intro}}</pre>
<h2>Operations</h2>
{{range .Ops}}<section id="{{.Method}}{{.Path}}">
<h3><span class="m">{{.Method}}</span> <span class="p">{{.Path}}</span></h3>
<p>{{.Summary}}</p>{{if .Description}}<p>{{.Description}}</p>{{end}}
<p>Access: <span class="a">{{.Access}}</span>{{if .Produces}} · Produces: {{.Produces}}{{end}}</p>
{{if .Params}}<table><tr><th>parameter</th><th>in</th><th>type</th><th>required</th><th>description</th></tr>
{{range .Params}}<tr><td><code>{{.Name}}</code></td><td>{{.In}}</td><td>{{.Type}}{{if .Format}} ({{.Format}}){{end}}</td><td>{{if .Required}}yes{{end}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}
{{if .Request}}<p>Request body: <a href="#def-{{.Request}}">{{.Request}}</a></p>{{end}}
{{if .Response}}<p>Response: {{.Response}}</p>{{end}}
</section>
{{end}}
<h2>Definitions</h2>
{{range .Defs}}<section id="def-{{.Name}}"><h3 class="p">{{.Name}}</h3>
{{if .Props}}<table><tr><th>field</th><th>type</th><th>description</th></tr>
{{range .Props}}<tr><td><code>{{.Name}}</code></td><td>{{.Type}}</td><td>{{.Description}}</td></tr>
{{end}}</table>{{end}}</section>
{{end}}
</body></html>
`))
