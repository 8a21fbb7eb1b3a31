package api

import (
	"encoding/json"
	"testing"
)

func TestTemplates_CRUDAndSpawn(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("POST", "/templates", `{"name":"py"}`), 400, "BAD_REQUEST")
	wantError(t, h.do("POST", "/templates", `{"name":"py","image":7}`), 400, "BAD_REQUEST")
	rec := h.do("POST", "/templates", `{"name":"py","image":"stacyvm/python","setup":["pip --version"],"memory_mb":256,"ttl_seconds":600,"env":{"A":"1"}}`)
	if rec.Code != 201 {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	m := decodeMap(t, rec)
	if m["name"] != "py" || m["version"] != float64(1) || m["image"] != "stacyvm/python" || m["created_at"] == "" {
		t.Errorf("created template: %v", m)
	}
	wantError(t, h.do("POST", "/templates", `{"name":"py","image":"x"}`), 409, "CONFLICT")
	if rec := h.do("GET", "/templates/py", ""); rec.Code != 200 || decodeMap(t, rec)["memory_mb"] != float64(256) {
		t.Errorf("get: %d %s", rec.Code, rec.Body)
	}
	wantError(t, h.do("GET", "/templates/nope", ""), 404, "NOT_FOUND")
	wantError(t, h.do("PUT", "/templates/py", `{"name":"other","image":"x"}`), 400, "BAD_REQUEST")
	if rec := h.do("PUT", "/templates/py", `{"image":"stacyvm/busybox"}`); rec.Code != 200 || decodeMap(t, rec)["version"] != float64(2) {
		t.Errorf("replace: %d %s", rec.Code, rec.Body)
	}
	rec = h.do("GET", "/templates", "")
	var list []map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil || len(list) != 1 {
		t.Fatalf("list: %d %s", rec.Code, rec.Body)
	}
	rec = h.do("POST", "/templates/py/spawn", `{"ttl":"5m"}`)
	if rec.Code != 201 || decodeMap(t, rec)["image"] != "stacyvm/busybox" {
		t.Errorf("spawn: %d %s", rec.Code, rec.Body)
	}
	if rec := h.do("POST", "/sandboxes", `{"template":"py"}`); rec.Code != 201 {
		t.Errorf("POST /sandboxes with template: %d %s", rec.Code, rec.Body)
	}
	wantError(t, h.do("POST", "/templates/nope/spawn", `{}`), 404, "NOT_FOUND")
	wantError(t, h.do("POST", "/templates/py/spawn", `{"ttl":"soon"}`), 400, "BAD_REQUEST")
	if rec := h.do("DELETE", "/templates/py", ""); rec.Code != 204 {
		t.Errorf("delete: %d %s", rec.Code, rec.Body)
	}
	wantError(t, h.do("DELETE", "/templates/py", ""), 404, "NOT_FOUND")
}

func TestQuotas_API(t *testing.T) {
	h := newHarness(t)
	wantError(t, h.do("PUT", "/quotas/alice", `{"max_ttl":"-5m"}`), 400, "BAD_REQUEST")
	wantError(t, h.do("PUT", "/quotas/alice", `{"max_sandboxes":-1}`), 400, "BAD_REQUEST")
	wantError(t, h.do("PUT", "/quotas/a%20b", `{"max_sandboxes":1}`), 400, "BAD_REQUEST")
	wantError(t, h.do("GET", "/quotas/alice", ""), 404, "NOT_FOUND")
	rec := h.do("PUT", "/quotas/alice", `{"max_sandboxes":2,"max_ttl":"1h"}`)
	if rec.Code != 200 {
		t.Fatalf("put: %d %s", rec.Code, rec.Body)
	}
	if m := decodeMap(t, rec); m["owner"] != "alice" || m["max_sandboxes"] != float64(2) || m["max_ttl"] != "1h0m0s" || m["max_exec_timeout"] != "" {
		t.Errorf("put answered %v", m)
	}
	h.do("PUT", "/quotas/bob", `{"max_exec_timeout":"30s"}`)
	if m := decodeMap(t, h.do("GET", "/quotas/summary", "")); m["total"] != float64(2) || m["with_max_sandboxes"] != float64(1) || m["with_max_ttl"] != float64(1) || m["with_max_exec_timeout"] != float64(1) {
		t.Errorf("summary %v", m)
	}
	if m := decodeMap(t, h.do("GET", "/quotas/alice/usage", "")); m["owner"] != "alice" || m["has_quota"] != true || m["max_sandboxes"] != float64(2) {
		t.Errorf("usage %v", m)
	}
	if rec := h.do("DELETE", "/quotas/alice", ""); rec.Code != 204 {
		t.Errorf("delete: %d %s", rec.Code, rec.Body)
	}
	wantError(t, h.do("DELETE", "/quotas/alice", ""), 404, "NOT_FOUND")
}
