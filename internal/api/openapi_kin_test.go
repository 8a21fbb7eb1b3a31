// These tests validate the served document and real responses with kin-openapi.

package api

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("validate: %v", err)
	}
	return doc
}

func TestOpenAPI_ValidDocument(t *testing.T) { loadOpenAPI(t) }

func TestOpenAPI_ResponsesMatchDocument(t *testing.T) {
	doc := loadOpenAPI(t)
	doc.Servers = openapi3.Servers{{URL: "http://example.test" + BasePath}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t)
	id := h.create(`{"owner_id":"o","metadata":{"stats":"yes"}}`)
	h.do("POST", "/sandboxes/"+id+"/files", `{"path":"/w/a.txt","content":"hi"}`)
	tests := []struct{ method, path, body string }{
		{"GET", "/health", ""},
		{"GET", "/ready", ""},
		{"POST", "/sandboxes", `{"image":"x","ttl":"10m"}`},
		{"POST", "/sandboxes", `{"ttl":"-1m"}`},
		{"POST", "/sandboxes/admission", `{"owner_id":"o"}`},
		{"GET", "/sandboxes", ""},
		{"GET", "/sandboxes/" + id, ""},
		{"GET", "/sandboxes/sb-nope", ""},
		{"GET", "/sandboxes/" + id + "/stats", ""},
		{"GET", "/sandboxes/" + id + "/logs", ""},
		{"POST", "/sandboxes/" + id + "/extend", `{"ttl":"1h"}`},
		{"POST", "/sandboxes/" + id + "/exec", `{"command":"echo hi"}`},
		{"POST", "/sandboxes/" + id + "/exec", `{"command":"sleep 1s","timeout":"10ms"}`},
		{"GET", "/sandboxes/" + id + "/files/list?path=/w", ""},
		{"GET", "/sandboxes/" + id + "/files/stat?path=/w/a.txt", ""},
		{"GET", "/sandboxes/" + id + "/files/glob?pattern=/w/*", ""},
		{"GET", "/providers", ""},
		{"POST", "/providers/test", ""},
		{"DELETE", "/sandboxes", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req := httptest.NewRequest(tt.method, "http://example.test"+BasePath+tt.path, body)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("no documented route: %v", err)
			}
			rec := httptest.NewRecorder()
			h.h.ServeHTTP(rec, req)
			in := &openapi3filter.RequestValidationInput{
				Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
			}
			out := &openapi3filter.ResponseValidationInput{
				RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
				Body:    io.NopCloser(bytes.NewReader(rec.Body.Bytes())),
				Options: &openapi3filter.Options{IncludeResponseStatus: true},
			}
			if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
				t.Errorf("status %d body %s does not match the document: %v", rec.Code, rec.Body, err)
			}
		})
	}
}
