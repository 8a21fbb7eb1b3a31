package e2e

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/api"
	"github.com/stacyvm/stacyvm/internal/auth"
)

// TestAuthMatrix_RealServer is the auth matrix of internal/api run against
// the real binary on real Docker: it walks api.Routes() (so a new route is
// covered without touching this test) and calls each one, with the ids of a
// real sandbox, without credentials, with a wrong key, with a bearer token
// the server cannot verify, and with a key of every role — configured keys
// for viewer, operator and admin, keys created through the admin API for
// tenant_admin and worker. Each answer must be 401, 403 for a role below
// the route's, and neither for a role that suffices. Destructive routes run
// last, so earlier ones meet a live sandbox.
func TestAuthMatrix_RealServer(t *testing.T) {
	const (
		viewerKey   = "e2e-viewer-3f9a1c7e5b2d4f6081a3c5e7"
		operatorKey = "e2e-operator-9e8d7c6b5a4f3e2d1c0b9a8f"
		adminKey    = "e2e-admin-1a2b3c4d5e6f708192a3b4c5d6"
	)
	s := startServer(t, "",
		"STACYVM_AUTH_API_KEY="+operatorKey,
		"STACYVM_AUTH_VIEWER_API_KEY="+viewerKey,
		"STACYVM_AUTH_ADMIN_API_KEY="+adminKey,
		"STACYVM_AUTH_RATE_LIMIT_PER_SECOND=0")
	base := strings.TrimSuffix(s.url, api.BasePath)

	do := func(method, path, body string, hdr ...string) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, base+path, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := httpClientNoRetry().Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close() // streams (events, watch) end here: only the status matters
		return resp.StatusCode, nil
	}
	mintKey := func(role auth.Role) string {
		var out struct {
			Key string `json:"key"`
		}
		code, data := s.callWith("POST", "/admin/keys", map[string]any{"name": "e2e-" + string(role), "role": string(role)}, &out, "X-Admin-API-Key", adminKey)
		if code != 201 || out.Key == "" {
			t.Fatalf("create %s key: %d %s", role, code, data)
		}
		return out.Key
	}
	keys := map[auth.Role][2]string{
		api.RoleViewer:      {"X-API-Key", viewerKey},
		api.RoleOperator:    {"X-API-Key", operatorKey},
		api.RoleAdmin:       {"X-Admin-API-Key", adminKey},
		api.RoleTenantAdmin: {"X-API-Key", mintKey(api.RoleTenantAdmin)},
		api.RoleWorker:      {"X-API-Key", mintKey(api.RoleWorker)},
	}

	var sb sandboxJSON
	if code, data := s.callWith("POST", "/sandboxes", map[string]any{"image": "stacyvm/busybox"}, &sb, "X-API-Key", operatorKey); code != 201 {
		t.Fatalf("spawn: %d %s", code, data)
	}
	param := regexp.MustCompile(`\{[a-z_]+(\.\.\.)?\}`)
	concrete := func(p string) string {
		return param.ReplaceAllStringFunc(p, func(v string) string {
			switch v {
			case "{id}":
				return sb.ID
			case "{name}":
				return "docker"
			case "{tenant}":
				return auth.DefaultTenant
			case "{owner}":
				return "local"
			case "{port}":
				return "8080"
			case "{profile...}":
				return "heap"
			}
			return "x1"
		})
	}

	routes := api.Routes()
	if len(routes) < 40 {
		t.Fatalf("only %d routes: the table walk is broken", len(routes))
	}
	slices.SortStableFunc(routes, func(a, b api.RouteInfo) int { // destructive last
		return boolInt(a.Method == http.MethodDelete) - boolInt(b.Method == http.MethodDelete)
	})
	checked := 0
	for _, rt := range routes {
		path := concrete(rt.Path)
		if !rt.Root {
			path = api.BasePath + path
		}
		body := ""
		if rt.Method == http.MethodPost || rt.Method == http.MethodPut {
			body = "{}"
		}
		name := rt.Method + " " + rt.Path
		call := func(hdr ...string) int {
			code, err := do(rt.Method, path, body, hdr...)
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: %v", name, err)
			}
			return code
		}
		if got := call(); (got == 401) != (rt.Role != api.RolePublic) {
			t.Errorf("%s without credentials: %d", name, got)
		}
		if rt.Role == api.RolePublic {
			continue
		}
		if got := call("X-API-Key", "e2e-wrong-key-0123456789abcdef0123"); got != 401 {
			t.Errorf("%s with a wrong key: %d, want 401", name, got)
		}
		if got := call("Authorization", "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."); got != 401 {
			t.Errorf("%s with an unverifiable bearer token: %d, want 401", name, got)
		}
		for _, role := range []auth.Role{api.RoleViewer, api.RoleOperator, api.RoleTenantAdmin, api.RoleAdmin, api.RoleWorker} {
			k := keys[role]
			got := call(k[0], k[1])
			switch {
			case role.Allows(rt.Role) && (got == 401 || got == 403):
				t.Errorf("%s as %s: %d, want access", name, role, got)
			case !role.Allows(rt.Role) && got != 403:
				t.Errorf("%s as %s: %d, want 403", name, role, got)
			}
			checked++
		}
	}
	t.Logf("%d routes, %d role checks against the real server", len(routes), checked)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
