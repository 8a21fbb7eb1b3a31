package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestPreview_OtherTenantIsNotFound: a preview (and a token) for a sandbox
// of another tenant is 404, exactly like an unknown sandbox.
func TestPreview_OtherTenantIsNotFound(t *testing.T) {
	const admin = "preview-e2e-admin-key-0123456789"
	s := startServer(t, "", "STACYVM_AUTH_ADMIN_API_KEY="+admin)
	adminDo := func(method, path string, body any, out any) {
		t.Helper()
		b, _ := json.Marshal(body)
		resp, data := kdo(t, nil, method, s.url+path, "", bytes.NewReader(b), map[string]string{"X-Admin-API-Key": admin, "Content-Type": "application/json"})
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, data)
		}
		if out != nil {
			json.Unmarshal(data, out)
		}
	}
	keys := map[string]string{}
	for _, tn := range []string{"ta", "tb"} {
		adminDo("POST", "/admin/tenants", map[string]any{"id": tn, "name": tn}, nil)
		var k struct {
			Key string `json:"key"`
		}
		adminDo("POST", "/admin/keys", map[string]any{"name": "op-" + tn, "role": "operator", "tenant_id": tn}, &k)
		if k.Key == "" {
			t.Fatalf("no key minted for tenant %s", tn)
		}
		keys[tn] = k.Key
	}
	// Tenant A's sandbox and app, driven with A's key.
	spawn := func(key string) string {
		resp, data := kdo(t, nil, "POST", s.url+"/sandboxes", key, strings.NewReader(`{"image":"stacyvm/python"}`), map[string]string{"Content-Type": "application/json"})
		var sb sandboxJSON
		if json.Unmarshal(data, &sb); resp.StatusCode != 201 {
			t.Fatalf("spawn: %d %s", resp.StatusCode, data)
		}
		body, _ := json.Marshal(map[string]any{"command": fmt.Sprintf("python3 -m http.server %d >/dev/null 2>&1 </dev/null &", appPort)})
		kdo(t, nil, "POST", s.url+"/sandboxes/"+sb.ID+"/exec", key, bytes.NewReader(body), map[string]string{"Content-Type": "application/json"})
		return sb.ID
	}
	id := spawn(keys["ta"])
	base := fmt.Sprintf("%s/preview/%s/%d/", s.root(), id, appPort)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, _ := kdo(t, nil, "GET", base, keys["ta"], nil, nil)
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tenant A's own preview: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, data := kdo(t, nil, "GET", base, keys["tb"], nil, nil)
	wantError(t, "tenant B, path routing", resp.StatusCode, data, 404, "NOT_FOUND")
	_, port, _ := net.SplitHostPort(s.hostPort())
	resp, data = kdo(t, hostClient(s), "GET", fmt.Sprintf("http://%d-%s.localhost:%s/", appPort, id, port), keys["tb"], nil, nil)
	wantError(t, "tenant B, host routing", resp.StatusCode, data, 404, "NOT_FOUND")
	resp, data = kdo(t, nil, "POST", fmt.Sprintf("%s/sandboxes/%s/preview/%d/token", s.url, id, appPort), keys["tb"], nil, nil)
	wantError(t, "tenant B mints a token", resp.StatusCode, data, 404, "NOT_FOUND")
	// A token minted by A works for anyone holding it.
	resp, data = kdo(t, nil, "POST", fmt.Sprintf("%s/sandboxes/%s/preview/%d/token", s.url, id, appPort), keys["ta"], nil, nil)
	var tok previewTokenJSON
	json.Unmarshal(data, &tok)
	if resp.StatusCode != 200 || tok.PathURL == "" {
		t.Fatalf("tenant A mints: %d %s", resp.StatusCode, data)
	}
	if resp, _ = kdo(t, nil, "GET", tok.PathURL, "", nil, nil); resp.StatusCode != 200 {
		t.Errorf("tenant A's token: %d", resp.StatusCode)
	}
}
