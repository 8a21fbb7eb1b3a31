package api

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t    testing.TB
	svc  *fakeService
	h    http.Handler
	logs *syncBuffer
}

func newHarness(t testing.TB, mod ...func(*Options)) *harness {
	t.Helper()
	svc := newFakeService()
	logs := &syncBuffer{}
	opts := Options{
		Service: svc, Logger: slog.New(slog.NewJSONHandler(logs, nil)), Version: "test",
		MaxBodyBytes: 64 << 10, MaxUploadBytes: 1 << 20, StartedAt: time.Now().Add(-time.Minute),
	}
	for _, m := range mod {
		m(&opts)
	}
	return &harness{t: t, svc: svc, h: New(opts), logs: logs}
}

// do sends a request; hdr holds key, value pairs.
func (h *harness) do(method, path, body string, hdr ...string) *httptest.ResponseRecorder {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	full := BasePath + path
	if strings.HasPrefix(path, rootPrefix) {
		full = path // operational routes live at the server root
	}
	req := httptest.NewRequest(method, full, rd)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec
}

// create makes a sandbox and returns its id.
func (h *harness) create(body string) string {
	h.t.Helper()
	rec := h.do("POST", "/sandboxes", body)
	if rec.Code != http.StatusCreated {
		h.t.Fatalf("create: status %d, body %s", rec.Code, rec.Body)
	}
	return decodeMap(h.t, rec)["id"].(string)
}

func decodeMap(t testing.TB, rec *httptest.ResponseRecorder) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", rec.Body, err)
	}
	return m
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// wantError checks status, code and JSON content type of an error response.
func wantError(t *testing.T, rec *httptest.ResponseRecorder, status int, code string) map[string]any {
	t.Helper()
	if rec.Code != status {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	m := decodeMap(t, rec)
	if m["code"] != code {
		t.Errorf("code = %v, want %s; body %s", m["code"], code, rec.Body)
	}
	if m["message"] == "" || m["message"] == nil {
		t.Errorf("empty message: %s", rec.Body)
	}
	return m
}

func TestSandbox_CreateReturnsWireShape(t *testing.T) {
	h := newHarness(t)
	rec := h.do("POST", "/sandboxes", `{"image":"stacyvm/python","ttl":"45m","metadata":{"team":"a"},"env":{"A":"1"},"owner_id":"alice"}`)
	if rec.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	m := decodeMap(t, rec)
	want := []string{"created_at", "expires_at", "id", "image", "memory_mb", "metadata", "network", "owner_id", "provider", "state", "vcpus"}
	if diff := cmp.Diff(want, keys(m)); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
	if m["state"] != "running" || m["image"] != "stacyvm/python" || m["owner_id"] != "alice" {
		t.Errorf("unexpected body %s", rec.Body)
	}
	created, err1 := time.Parse(time.RFC3339, m["created_at"].(string))
	expires, err2 := time.Parse(time.RFC3339, m["expires_at"].(string))
	if err1 != nil || err2 != nil || !strings.HasSuffix(m["expires_at"].(string), "Z") {
		t.Fatalf("times not RFC 3339 UTC: %s", rec.Body)
	}
	if d := expires.Sub(created); d < 44*time.Minute || d > 46*time.Minute {
		t.Errorf("expires - created = %s, want ~45m", d)
	}
}

func TestSandbox_LifecycleRoutes(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{"owner_id":"bob","metadata":{"env":"ci","stats":"yes"}}`)
	h.create(`{"owner_id":"carol"}`)

	if rec := h.do("GET", "/sandboxes/"+id, ""); rec.Code != 200 || decodeMap(t, rec)["id"] != id {
		t.Fatalf("get: %d %s", rec.Code, rec.Body)
	}
	var list []map[string]any
	rec := h.do("GET", "/sandboxes?owner_id=bob&state=running&label=env=ci&limit=5", "")
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 1 || list[0]["id"] != id {
		t.Fatalf("filtered list: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("GET", "/sandboxes?owner_id=nobody", ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != "[]" {
		t.Errorf("empty list = %d %q, want 200 []", rec.Code, rec.Body)
	}
	rec = h.do("POST", "/sandboxes/"+id+"/extend", `{"ttl":"2h"}`)
	if rec.Code != 200 {
		t.Fatalf("extend: %d %s", rec.Code, rec.Body)
	}
	exp, _ := time.Parse(time.RFC3339, decodeMap(t, rec)["expires_at"].(string))
	if d := time.Until(exp); d < 119*time.Minute || d > 121*time.Minute {
		t.Errorf("extended expiry in %s, want ~2h", d)
	}
	if rec := h.do("GET", "/sandboxes/"+id+"/logs?lines=1", ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `["agent ready"]` {
		t.Errorf("logs = %d %s", rec.Code, rec.Body)
	}
	rec = h.do("GET", "/sandboxes/"+id+"/stats", "")
	if diff := cmp.Diff([]string{"cpu_pct", "mem_bytes", "mem_limit_bytes", "supported"}, keys(decodeMap(t, rec))); diff != "" {
		t.Errorf("stats keys (-want +got):\n%s", diff)
	}
	other := h.create(`{}`)
	if rec := h.do("GET", "/sandboxes/"+other+"/stats", ""); strings.TrimSpace(rec.Body.String()) != `{"supported":false}` {
		t.Errorf("unsupported stats = %s", rec.Body)
	}
	if rec := h.do("DELETE", "/sandboxes/"+id, ""); rec.Code != 200 || strings.TrimSpace(rec.Body.String()) != `{"status":"destroyed"}` {
		t.Fatalf("destroy: %d %s", rec.Code, rec.Body)
	}
	wantError(t, h.do("DELETE", "/sandboxes/"+id, ""), 404, "NOT_FOUND")
	wantError(t, h.do("GET", "/sandboxes/"+id, ""), 404, "NOT_FOUND")

	h.svc.now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	if rec := h.do("DELETE", "/sandboxes", ""); strings.TrimSpace(rec.Body.String()) != `{"pruned":2}` {
		t.Errorf("prune = %d %s, want {\"pruned\":2}", rec.Code, rec.Body)
	}
}

func TestAdmission_ExactKeys(t *testing.T) {
	h := newHarness(t)
	h.create(`{"owner_id":"dave"}`)
	tests := []struct {
		name, body string
		hdr        []string
		want       []string
	}{
		{"no owner", `{}`, nil, []string{"active_sandboxes", "allowed", "max_sandboxes", "max_ttl", "queueable"}},
		{"owner header", ``, []string{"X-User-ID", "dave"}, []string{"active_owner_sandboxes", "active_sandboxes", "allowed", "max_owner_sandboxes", "max_sandboxes", "max_ttl", "queueable"}},
		{"denied", `{"ttl":"100h"}`, nil, []string{"active_sandboxes", "allowed", "max_sandboxes", "max_ttl", "queueable", "reason"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do("POST", "/sandboxes/admission", tt.body, tt.hdr...)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			m := decodeMap(t, rec)
			if diff := cmp.Diff(tt.want, keys(m)); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
			if m["max_ttl"] != "24h0m0s" {
				t.Errorf("max_ttl = %v, want a duration string", m["max_ttl"])
			}
		})
	}
}

func TestCreate_RejectsBadInput(t *testing.T) {
	tests := []struct {
		name, body string
		hdr        []string
		status     int
		code, msg  string
	}{
		{"malformed JSON", `{"image":`, nil, 400, "BAD_REQUEST", "malformed JSON"},
		{"syntax error", `{image}`, nil, 400, "BAD_REQUEST", "malformed JSON"},
		{"not an object", `[1,2]`, nil, 400, "BAD_REQUEST", "JSON object"},
		{"trailing garbage", `{} {}`, nil, 400, "BAD_REQUEST", "single JSON object"},
		{"trailing junk", `{}x`, nil, 400, "BAD_REQUEST", "single JSON object"},
		{"wrong type memory", `{"memory_mb":"lots"}`, nil, 400, "BAD_REQUEST", `"memory_mb"`},
		{"wrong type metadata", `{"metadata":{"a":1}}`, nil, 400, "BAD_REQUEST", `metadata`},
		{"numeric ttl", `{"ttl":30}`, nil, 400, "BAD_REQUEST", `"ttl"`},
		{"negative ttl", `{"ttl":"-5m"}`, nil, 400, "BAD_REQUEST", `"ttl"`},
		{"malformed ttl", `{"ttl":"soon"}`, nil, 400, "BAD_REQUEST", `"ttl"`},
		{"unknown template", `{"template":"py"}`, nil, 404, "NOT_FOUND", "template py not found"},
		{"ttl over max", `{"ttl":"100h"}`, nil, 429, "RESOURCE_LIMIT", "max_ttl"},
		{"user id too long", `{}`, []string{"X-User-ID", strings.Repeat("u", 129)}, 400, "BAD_REQUEST", "128"},
		{"user id slash", `{}`, []string{"X-User-ID", "a/b"}, 400, "BAD_REQUEST", "X-User-ID"},
		{"user id backslash", `{}`, []string{"X-User-ID", `a\b`}, 400, "BAD_REQUEST", "X-User-ID"},
		{"user id inner space", `{}`, []string{"X-User-ID", "a b"}, 400, "BAD_REQUEST", "X-User-ID"},
		{"user id control char", `{}`, []string{"X-User-ID", "a\x01b"}, 400, "BAD_REQUEST", "X-User-ID"},
		{"body owner_id slash", `{"owner_id":"../x"}`, nil, 400, "BAD_REQUEST", "owner_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			m := wantError(t, h.do("POST", "/sandboxes", tt.body, tt.hdr...), tt.status, tt.code)
			if !strings.Contains(m["message"].(string), tt.msg) {
				t.Errorf("message %q does not contain %q", m["message"], tt.msg)
			}
		})
	}
}

func TestCreate_AcceptsEdgeInput(t *testing.T) {
	tests := []struct {
		name, body string
		hdr        []string
		owner      string
	}{
		{"empty body takes defaults", ``, nil, ""},
		{"unknown fields tolerated", `{"image":"x","future_field":{"a":[1]},"tenant_id":"t"}`, nil, ""},
		{"user id header overrides body", `{"owner_id":"body"}`, []string{"X-User-ID", "  header  "}, "header"},
		{"user id of 128 chars", `{}`, []string{"X-User-ID", strings.Repeat("u", 128)}, strings.Repeat("u", 128)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			rec := h.do("POST", "/sandboxes", tt.body, tt.hdr...)
			if rec.Code != 201 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			if got, _ := decodeMap(t, rec)["owner_id"].(string); got != tt.owner {
				t.Errorf("owner_id = %q, want %q", got, tt.owner)
			}
		})
	}
}

func TestQueryAndBodyValidation(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	tests := []struct{ name, method, path, body string }{
		{"list bad state", "GET", "/sandboxes?state=sleeping", ""},
		{"list bad limit", "GET", "/sandboxes?limit=-1", ""},
		{"list non-numeric limit", "GET", "/sandboxes?limit=ten", ""},
		{"list bad label", "GET", "/sandboxes?label=novalue", ""},
		{"list bad owner", "GET", "/sandboxes?owner_id=a/b", ""},
		{"logs bad lines", "GET", "/sandboxes/" + id + "/logs?lines=x", ""},
		{"extend missing body", "POST", "/sandboxes/" + id + "/extend", ""},
		{"extend missing ttl", "POST", "/sandboxes/" + id + "/extend", `{}`},
		{"extend zero ttl", "POST", "/sandboxes/" + id + "/extend", `{"ttl":"0s"}`},
		{"extend negative ttl", "POST", "/sandboxes/" + id + "/extend", `{"ttl":"-1h"}`},
		{"extend malformed ttl", "POST", "/sandboxes/" + id + "/extend", `{"ttl":"1 hour"}`},
		{"extend wrong type", "POST", "/sandboxes/" + id + "/extend", `{"ttl":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantError(t, h.do(tt.method, tt.path, tt.body), 400, "BAD_REQUEST")
		})
	}
}

func TestUnknownSandbox_NotFound(t *testing.T) {
	h := newHarness(t)
	const id = "sb-000000000bad"
	tests := []struct{ method, path, body string }{
		{"GET", "/sandboxes/" + id, ""},
		{"DELETE", "/sandboxes/" + id, ""},
		{"POST", "/sandboxes/" + id + "/extend", `{"ttl":"1h"}`},
		{"GET", "/sandboxes/" + id + "/logs", ""},
		{"GET", "/sandboxes/" + id + "/stats", ""},
		{"POST", "/sandboxes/" + id + "/exec", `{"command":"echo hi"}`},
		{"POST", "/sandboxes/" + id + "/exec", `{"command":"echo hi","stream":true}`},
		{"POST", "/sandboxes/" + id + "/files", `{"path":"/a","content":"x"}`},
		{"GET", "/sandboxes/" + id + "/files?path=/a", ""},
		{"DELETE", "/sandboxes/" + id + "/files?path=/a", ""},
		{"PUT", "/sandboxes/" + id + "/files/raw?path=/a", "data"},
		{"GET", "/sandboxes/" + id + "/files/list", ""},
		{"GET", "/sandboxes/" + id + "/files/stat?path=/a", ""},
		{"GET", "/sandboxes/" + id + "/files/glob?pattern=/*", ""},
		{"POST", "/sandboxes/" + id + "/files/move", `{"old_path":"/a","new_path":"/b"}`},
		{"POST", "/sandboxes/" + id + "/files/chmod", `{"path":"/a","mode":"0600"}`},
		{"GET", "/providers/nope", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path+" "+tt.body, func(t *testing.T) {
			wantError(t, h.do(tt.method, tt.path, tt.body), 404, "NOT_FOUND")
		})
	}
}

func TestRouting_UnknownRouteAndWrongMethod(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("GET", "/nope", ""), 404, "NOT_FOUND")
	wantError(t, h.do("GET", "/sandboxes/x/y/z", ""), 404, "NOT_FOUND")
	rec := h.do("PATCH", "/sandboxes", "")
	wantError(t, rec, 405, "BAD_REQUEST")
	if got := rec.Header().Get("Allow"); got != "GET, HEAD, POST, DELETE" {
		t.Errorf("Allow = %q", got)
	}
	rec = h.do("PUT", "/sandboxes/sb-1/exec", "")
	wantError(t, rec, 405, "BAD_REQUEST")
	if got := rec.Header().Get("Allow"); got != "POST" {
		t.Errorf("Allow = %q, want POST", got)
	}
}

func TestSystem_HealthReadyProviders(t *testing.T) {
	h := newHarness(t)
	for path, status := range map[string]string{"/health": "ok", "/live": "alive", "/ready": "ready"} {
		rec := h.do("GET", path, "")
		m := decodeMap(t, rec)
		if rec.Code != 200 || m["status"] != status || m["version"] != "test" || m["uptime"] != "1m0s" {
			t.Errorf("%s = %d %s", path, rec.Code, rec.Body)
		}
	}
	h.svc.readyErr = errUnavailable("docker daemon unreachable")
	rec := h.do("GET", "/ready", "")
	if m := decodeMap(t, rec); rec.Code != 503 || m["status"] != "not_ready" || m["error"] != "docker daemon unreachable" {
		t.Errorf("not ready = %d %s", rec.Code, rec.Body)
	}

	rec = h.do("GET", "/providers", "")
	var ps []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &ps); err != nil || len(ps) != 1 {
		t.Fatalf("providers = %d %s", rec.Code, rec.Body)
	}
	want := []string{"capabilities", "default", "healthy", "isolation", "last_checked", "latency_ms", "name", "security_boundary"}
	if diff := cmp.Diff(want, keys(ps[0])); diff != "" {
		t.Errorf("provider keys (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{"exec", "files", "none"}, ps[0]["capabilities"]); diff != "" {
		t.Errorf("capabilities (-want +got):\n%s", diff)
	}
	if rec := h.do("GET", "/providers/mock", ""); rec.Code != 200 || decodeMap(t, rec)["name"] != "mock" {
		t.Errorf("provider mock = %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("POST", "/providers/test", ""); strings.TrimSpace(rec.Body.String()) != `{"mock":true}` {
		t.Errorf("providers/test = %d %s", rec.Code, rec.Body)
	}
	rec = h.do("GET", "/openapi.json", "")
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || !json.Valid(rec.Body.Bytes()) {
		t.Errorf("openapi.json = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
}
