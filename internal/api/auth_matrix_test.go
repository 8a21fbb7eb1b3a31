package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/auth"
	"github.com/stacyvm/stacyvm/internal/store"
	"github.com/stacyvm/stacyvm/internal/store/sqlite"
)

// matrixKeys is one key per role, plus the header it is sent in.
var matrixKeys = map[Role][2]string{
	RoleViewer:      {"X-API-Key", "key-viewer-0123456789"},
	RoleOperator:    {"X-API-Key", "key-operator-0123456789"},
	RoleTenantAdmin: {"X-API-Key", "key-tenant-admin-0123456789"},
	RoleAdmin:       {"X-Admin-API-Key", "key-admin-0123456789"},
	RoleWorker:      {"X-API-Key", "key-worker-0123456789"},
}

func openGov(t testing.TB) store.Governance {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "gov.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.Governance()
}

func matrixHarness(t *testing.T, mod ...func(*Options)) *harness {
	gov := openGov(t)
	return newHarness(t, append([]func(*Options){func(o *Options) {
		o.APIKey = matrixKeys[RoleOperator][1]
		o.AdminAPIKey = matrixKeys[RoleAdmin][1]
		o.Security.Keys = map[Role][]string{
			RoleViewer:      {matrixKeys[RoleViewer][1]},
			RoleTenantAdmin: {matrixKeys[RoleTenantAdmin][1]},
			RoleWorker:      {matrixKeys[RoleWorker][1]},
		}
		o.Security.Governance = gov
	}}, mod...)...)
}

var pathParam = regexp.MustCompile(`\{[a-z_]+(\.\.\.)?\}`)

// concretePath fills a route pattern with plausible values.
func concretePath(p string) string {
	return pathParam.ReplaceAllStringFunc(p, func(v string) string {
		switch v {
		case "{id}":
			return "sb-0000000000000001"
		case "{name}":
			return "mock"
		case "{tenant}":
			return auth.DefaultTenant
		case "{profile...}":
			return "heap"
		}
		return "x1"
	})
}

// matrixDo sends one request with a short deadline (streaming routes such
// as /events would otherwise run until the client leaves).
func matrixDo(h *harness, rt RouteInfo, hdr ...string) int {
	path := concretePath(rt.Path)
	if !rt.Root {
		path = BasePath + path
	}
	var body *strings.Reader
	if rt.Method == http.MethodPost || rt.Method == http.MethodPut {
		body = strings.NewReader("{}")
	} else {
		body = strings.NewReader("")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req := httptest.NewRequestWithContext(ctx, rt.Method, path, body)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec.Code
}

// TestAuthMatrix walks the route table (so routes added later are covered
// without touching this test) and calls every route with no credentials,
// wrong credentials and every role: 401 without or with wrong credentials,
// 403 for a role below the route's, and neither for a sufficient one.
func TestAuthMatrix(t *testing.T) {
	h := matrixHarness(t)
	routes := Routes()
	if len(routes) < 40 {
		t.Fatalf("only %d routes: the table walk is broken", len(routes))
	}
	for _, rt := range routes {
		if !rt.Role.Valid() || rt.Role == "" {
			t.Errorf("%s %s declares no valid role (%q)", rt.Method, rt.Path, rt.Role)
			continue
		}
		name := rt.Method + " " + rt.Path
		if got := matrixDo(h, rt); (got == 401) != (rt.Role != RolePublic) {
			t.Errorf("%s without credentials: %d", name, got)
		}
		if got := matrixDo(h, rt, "X-API-Key", "wrong-key-0123456789"); got != 401 {
			t.Errorf("%s with a wrong key: %d, want 401", name, got)
		}
		if got := matrixDo(h, rt, "Authorization", "Bearer not.a.jwt"); got != 401 {
			t.Errorf("%s with a bearer token and no OIDC: %d, want 401", name, got)
		}
		for _, role := range []Role{RoleViewer, RoleOperator, RoleTenantAdmin, RoleAdmin, RoleWorker} {
			k := matrixKeys[role]
			got := matrixDo(h, rt, k[0], k[1])
			switch {
			case role.Allows(rt.Role) && (got == 401 || got == 403):
				t.Errorf("%s as %s: %d, want access", name, role, got)
			case !role.Allows(rt.Role) && got != 403:
				t.Errorf("%s as %s: %d, want 403", name, role, got)
			}
		}
	}
}

// TestAuthMatrix_OpenMode: with no credentials configured every caller is
// the local admin (the server then binds to loopback only).
func TestAuthMatrix_OpenMode(t *testing.T) {
	h := newHarness(t)
	for _, rt := range Routes() {
		if got := matrixDo(h, rt); got == 401 || got == 403 {
			t.Errorf("%s %s in open mode: %d", rt.Method, rt.Path, got)
		}
	}
}
