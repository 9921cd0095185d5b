package gateway

import (
	"net/http"
	"slices"
	"strings"
)

// route is one HTTP route of the public API.
type route struct {
	method   string
	template string   // /v1/api-keys/{key_id}
	segments []string // "" marks a path parameter
	public   bool
}

// routeTable answers, before any backend is called, whether a path exists, which
// methods it takes and whether it needs authentication. It is built from the OpenAPI
// document, so it cannot drift from the routes actually served.
type routeTable struct{ routes []route }

func newRouteTable(infos []routeInfo) *routeTable {
	t := &routeTable{}
	for _, in := range infos {
		segs := splitPath(in.Path)
		for i, s := range segs {
			if strings.HasPrefix(s, "{") {
				segs[i] = ""
			}
		}
		t.routes = append(t.routes, route{method: in.Method, template: in.Path, segments: segs, public: in.Public})
	}
	return t
}

// routeInfo is the input of newRouteTable.
type routeInfo struct {
	Method, Path string
	Public       bool
}

// match returns the route for method and path; when the path exists under other
// methods only, r is nil and allowed lists them.
func (t *routeTable) match(method, path string) (r *route, allowed []string) {
	segs := splitPath(path)
	if method == http.MethodHead {
		method = http.MethodGet
	}
	for i := range t.routes {
		rt := &t.routes[i]
		if !segmentsMatch(rt.segments, segs) {
			continue
		}
		if rt.method == method {
			return rt, nil
		}
		if !slices.Contains(allowed, rt.method) {
			allowed = append(allowed, rt.method)
		}
	}
	return nil, allowed
}

func segmentsMatch(tmpl, segs []string) bool {
	if len(tmpl) != len(segs) {
		return false
	}
	for i, s := range tmpl {
		if segs[i] == "" || (s != "" && s != segs[i]) {
			return false
		}
	}
	return true
}

// splitPath splits a path into segments, ignoring one leading and one trailing slash;
// empty segments ("//") never match a template.
func splitPath(p string) []string {
	return strings.Split(strings.TrimSuffix(strings.TrimPrefix(p, "/"), "/"), "/")
}
