package e2e

import (
	"strings"
	"testing"
)

// TestTemplatesAndQuotas: a template's recipe and setup steps apply to a
// real Docker sandbox, a failing setup leaves no container behind, and an
// owner's quota caps its sandboxes with 429.
func TestTemplatesAndQuotas(t *testing.T) {
	s := startServer(t, "")
	code, data := s.call("POST", "/templates", map[string]any{
		"name": "py", "image": "stacyvm/python", "memory_mb": 128, "ttl_seconds": 300,
		"env":   map[string]string{"GREETING": "hello"},
		"setup": []string{"python3 -c 'import os; open(\"/workspace/ready\",\"w\").write(os.environ[\"GREETING\"])'"},
	}, nil)
	if code != 201 {
		t.Fatalf("create template: %d %s", code, data)
	}
	var sb sandboxJSON
	if code, data := s.call("POST", "/templates/py/spawn", map[string]any{"ttl": "2m"}, &sb); code != 201 {
		t.Fatalf("spawn from template: %d %s", code, data)
	}
	if sb.Image != "stacyvm/python" || sb.Metadata["stacyvm.template"] != "py" {
		t.Errorf("spawned sandbox: %+v", sb)
	}
	if r := s.exec(sb.ID, "cat /workspace/ready; echo \" $GREETING\""); r.Stdout != "hello hello\n" {
		t.Errorf("setup output / env in the sandbox: %+v", r)
	}

	before := len(containers(t, s.dataDir))
	s.call("POST", "/templates", map[string]any{"name": "broken", "image": "stacyvm/busybox", "setup": []string{"echo nope >&2; exit 3"}}, nil)
	code, data = s.call("POST", "/sandboxes", map[string]any{"template": "broken"}, nil)
	wantError(t, "failing setup", code, data, 400, "BAD_REQUEST")
	if !strings.Contains(string(data), "exited with code 3") || !strings.Contains(string(data), "nope") {
		t.Errorf("failing setup error lacks the exit code or output: %s", data)
	}
	if after := len(containers(t, s.dataDir)); after != before {
		t.Errorf("a failed template spawn left a container (%d → %d)", before, after)
	}

	if code, data := s.call("PUT", "/quotas/carol", map[string]any{"max_sandboxes": 1}, nil); code != 200 {
		t.Fatalf("put quota: %d %s", code, data)
	}
	if code, data := s.call("POST", "/sandboxes", map[string]any{"owner_id": "carol"}, nil); code != 201 {
		t.Fatalf("first sandbox of carol: %d %s", code, data)
	}
	code, data = s.call("POST", "/sandboxes", map[string]any{"owner_id": "carol"}, nil)
	wantError(t, "second sandbox over carol's quota", code, data, 429, "RESOURCE_LIMIT")
}
