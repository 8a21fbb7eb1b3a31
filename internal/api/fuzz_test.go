package api

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecode_BadInputIsNeverA500 feeds arbitrary bodies to the JSON routes:
// bad input must be a 4xx with a JSON error body, never a 500.
func FuzzDecode_BadInputIsNeverA500(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"ttl":"-1s"}`, `{"command":"echo"}`, `[`, `{"a":1}{`, `null`, `"x"`,
		`{"mode":"argv"}`, `{"path":"/a","content":"x","mode":"9"}`, `{"timeout":1e999}`, "\xff"} {
		f.Add(seed)
	}
	h := newHarness(f)
	id := h.create(`{}`)
	paths := []string{"/sandboxes", "/sandboxes/admission", "/sandboxes/" + id + "/exec",
		"/sandboxes/" + id + "/extend", "/sandboxes/" + id + "/files", "/sandboxes/" + id + "/files/move",
		"/sandboxes/" + id + "/files/chmod"}
	f.Fuzz(func(t *testing.T, body string) {
		for _, p := range paths {
			req := httptest.NewRequest("POST", BasePath+p, strings.NewReader(body))
			rec := httptest.NewRecorder()
			h.h.ServeHTTP(rec, req)
			if rec.Code >= 500 {
				t.Fatalf("POST %s %q: status %d %s", p, body, rec.Code, rec.Body)
			}
			if rec.Code >= 400 && !json.Valid(rec.Body.Bytes()) {
				t.Fatalf("POST %s %q: error body is not JSON: %q", p, body, rec.Body)
			}
		}
	})
}
