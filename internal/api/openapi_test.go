package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// openAPIOps parses the embedded document into "METHOD /path" → operation.
func openAPIOps(t *testing.T) map[string]map[string]any {
	t.Helper()
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json does not parse: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Errorf("openapi = %q, want 3.1.x", doc.OpenAPI)
	}
	ops := map[string]map[string]any{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if method == "parameters" || method == "summary" || method == "description" || method == "servers" {
				continue
			}
			var op map[string]any
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			ops[strings.ToUpper(method)+" "+path] = op
		}
	}
	return ops
}

func TestOpenAPI_MatchesRouteTable(t *testing.T) {
	ops := openAPIOps(t)
	seen := map[string]bool{}
	for _, rt := range Routes() {
		// OpenAPI names a rest-of-path wildcard {p}, ServeMux {p...}.
		key := rt.Method + " " + strings.ReplaceAll(rt.Path, "...}", "}")
		seen[key] = true
		op, ok := ops[key]
		if !ok {
			t.Errorf("route %s is missing from openapi.json", key)
			continue
		}
		responses, _ := op["responses"].(map[string]any)
		if responses["200"] == nil && responses["201"] == nil && responses["204"] == nil {
			t.Errorf("%s documents no success response", key)
		}
		sec, hasSec := op["security"].([]any)
		public := hasSec && len(sec) == 0
		if public != (rt.Role == RolePublic) {
			t.Errorf("%s: documented as public=%v, table role %s", key, public, rt.Role)
		}
		if rt.Role != RolePublic && responses["401"] == nil {
			t.Errorf("%s: no 401 response documented", key)
		}
	}
	for key := range ops {
		if !seen[key] {
			t.Errorf("openapi.json documents %s, which the route table does not register", key)
		}
	}
}

func TestRoutes_TableIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, rt := range Routes() {
		key := rt.Method + " " + rt.Path
		if seen[key] {
			t.Errorf("duplicate route %s", key)
		}
		seen[key] = true
		if !rt.Role.Valid() {
			t.Errorf("%s has unknown role %q", key, rt.Role)
		}
		if !strings.HasPrefix(rt.Path, "/") {
			t.Errorf("%s: path must start with /", key)
		}
	}
}
