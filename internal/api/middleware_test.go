package api

import (
	"strings"
	"testing"

	"github.com/stacyvm/stacyvm/internal/errs"
)

func TestAuth_APIKey(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.APIKey = "s3cret-key" })
	tests := []struct {
		name, method, path string
		hdr                []string
		status             int
	}{
		{"no key", "GET", "/sandboxes", nil, 401},
		{"wrong key", "GET", "/sandboxes", []string{"X-API-Key", "s3cret-kez"}, 401},
		{"prefix of key", "GET", "/sandboxes", []string{"X-API-Key", "s3cret"}, 401},
		{"right key", "GET", "/sandboxes", []string{"X-API-Key", "s3cret-key"}, 200},
		{"create without key", "POST", "/sandboxes", nil, 401},
		{"providers without key", "GET", "/providers", nil, 401},
		{"health public", "GET", "/health", nil, 200},
		{"live public", "GET", "/live", nil, 200},
		{"ready public", "GET", "/ready", nil, 200},
		{"openapi public", "GET", "/openapi.json", nil, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do(tt.method, tt.path, "", tt.hdr...)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.status == 401 {
				wantError(t, rec, 401, "UNAUTHORIZED")
			}
		})
	}
	if strings.Contains(h.logs.String(), "s3cret") {
		t.Error("the API key reached the log")
	}
}

func TestAuth_EveryNonPublicRouteNeedsKey(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.APIKey = "k" })
	for _, rt := range Routes() {
		path := strings.NewReplacer("{id}", "sb-1", "{name}", "mock", "{profile...}", "heap").Replace(rt.Path)
		rec := h.do(rt.Method, path, "")
		if got := rec.Code == 401; got != (rt.Role != RolePublic) {
			t.Errorf("%s %s (role %s): status %d without a key", rt.Method, rt.Path, rt.Role, rec.Code)
		}
	}
}

func TestRole_Allows(t *testing.T) {
	tests := []struct {
		have, need Role
		want       bool
	}{
		{RolePublic, RolePublic, true},
		{RolePublic, RoleOperator, false},
		{RoleOperator, RolePublic, true},
		{RoleOperator, RoleOperator, true},
		{RoleOperator, Role("admin-typo"), false},
	}
	for _, tt := range tests {
		if got := tt.have.Allows(tt.need); got != tt.want {
			t.Errorf("%s.Allows(%s) = %v, want %v", tt.have, tt.need, got, tt.want)
		}
	}
}

func TestRequestID(t *testing.T) {
	h := newHarness(t)
	tests := []struct {
		name, in string
		echoed   bool
	}{
		{"sane id echoed", "abc-123_X", true},
		{"64 chars echoed", strings.Repeat("r", 64), true},
		{"65 chars replaced", strings.Repeat("r", 65), false},
		{"space replaced", "a b", false},
		{"missing generated", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := h.do("GET", "/sandboxes/sb-x", "", "X-Request-ID", tt.in)
			got := rec.Header().Get("X-Request-ID")
			if tt.echoed && got != tt.in || !tt.echoed && (got == tt.in || !strings.HasPrefix(got, "req-")) {
				t.Errorf("X-Request-ID = %q for %q", got, tt.in)
			}
			if m := decodeMap(t, rec); m["request_id"] != got {
				t.Errorf("body request_id = %v, header %q", m["request_id"], got)
			}
		})
	}
}

func TestErrors_InternalHidesDetails(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	rec := h.do("POST", "/sandboxes/"+id+"/exec", `{"command":"boom"}`)
	m := wantError(t, rec, 500, "INTERNAL_ERROR")
	msg := m["message"].(string)
	if strings.Contains(msg, "secret.sock") || strings.Contains(msg, "refused") || !strings.Contains(msg, "error id err-") {
		t.Errorf("message = %q: want an error id and no internal text", msg)
	}
	errID := strings.TrimSuffix(msg[strings.Index(msg, "err-"):], ")")
	logs := h.logs.String()
	if !strings.Contains(logs, errID) || !strings.Contains(logs, "secret.sock") {
		t.Errorf("log lacks the error id %s or the real error:\n%s", errID, logs)
	}
}

func TestStatusOf_EveryClass(t *testing.T) {
	want := map[errs.Class]int{
		errs.Invalid: 400, errs.Unauthorized: 401, errs.Forbidden: 403, errs.NotFound: 404,
		errs.Timeout: 408, errs.Conflict: 409, errs.TooLarge: 413, errs.Limit: 429,
		errs.Unavailable: 503, errs.Internal: 500,
	}
	for c, status := range want {
		if got := c.HTTPStatus(); got != status {
			t.Errorf("%s.HTTPStatus() = %d, want %d", c, got, status)
		}
	}
}

func TestRecover_PanicIs500(t *testing.T) {
	h := newHarness(t)
	id := h.create(`{}`)
	h.svc.scripts["panic"] = func(_ ctxT, _, _ writerT) (resT, error) { panic("kaboom /etc/secret") }
	rec := h.do("POST", "/sandboxes/"+id+"/exec", `{"command":"panic"}`)
	m := wantError(t, rec, 500, "INTERNAL_ERROR")
	if strings.Contains(m["message"].(string), "kaboom") {
		t.Errorf("panic value leaked: %v", m["message"])
	}
	if !strings.Contains(h.logs.String(), "kaboom") {
		t.Error("panic not logged")
	}
}

func TestAccessLog_OneStructuredLinePerRequest(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.APIKey = "topsecret" })
	h.do("POST", "/sandboxes", `{"env":{"TOKEN":"hunter2"}}`, "X-API-Key", "topsecret", "X-Request-ID", "rid-1")
	var line string
	for _, l := range strings.Split(h.logs.String(), "\n") {
		if strings.Contains(l, `"rid-1"`) && strings.Contains(l, "http request") {
			line = l
		}
	}
	for _, want := range []string{`"method":"POST"`, `"route":"POST /api/v1/sandboxes"`, `"status":201`, `"bytes":`, `"duration":`} {
		if !strings.Contains(line, want) {
			t.Errorf("access log line %q lacks %s", line, want)
		}
	}
	if strings.Contains(h.logs.String(), "hunter2") || strings.Contains(h.logs.String(), "topsecret") {
		t.Error("a body or header value reached the log")
	}
}

func TestAuth_AdminRoutesNeedTheAdminKey(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.APIKey = "op-key"; o.AdminAPIKey = "admin-key" })
	cases := []struct {
		name   string
		hdr    []string
		status int
	}{
		{"no key", nil, 401},
		{"operator key", []string{"X-API-Key", "op-key"}, 403},
		{"wrong admin key", []string{"X-Admin-API-Key", "nope"}, 401},
		{"admin key", []string{"X-Admin-API-Key", "admin-key"}, 200},
		{"admin key as X-API-Key", []string{"X-API-Key", "admin-key"}, 200},
	}
	for _, c := range cases {
		rec := h.do("GET", "/debug/pprof/cmdline", "", c.hdr...)
		if rec.Code != c.status {
			t.Errorf("%s: status %d, want %d", c.name, rec.Code, c.status)
		}
	}
	// The admin key also works on operator routes.
	if rec := h.do("GET", "/sandboxes", "", "X-Admin-API-Key", "admin-key"); rec.Code != 200 {
		t.Errorf("admin key on an operator route: %d", rec.Code)
	}
}
