package api

import (
	"net/http"
	"strings"

	"github.com/stacyvm/stacyvm/internal/auth"
)

// Role is the least privilege a route requires (auth.Role): viewer <
// operator < tenant_admin < admin, with worker apart. An unknown role locks
// its route rather than opening it.
type Role = auth.Role

// The roles, as the route table names them.
const (
	RolePublic      = auth.RolePublic      // anyone, without credentials
	RoleViewer      = auth.RoleViewer      // read-only, own tenant
	RoleOperator    = auth.RoleOperator    // create and use sandboxes, own tenant (X-API-Key)
	RoleTenantAdmin = auth.RoleTenantAdmin // manage own tenant's keys, members, policies
	RoleAdmin       = auth.RoleAdmin       // everything (X-Admin-API-Key; or no key configured)
	RoleWorker      = auth.RoleWorker      // cluster workers: worker routes only
)

// handlerFunc is a route handler: it writes a success response itself and
// returns an error for everything else, which writeError maps once.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one row of the routing table.
type route struct {
	Method  string
	Path    string // under BasePath, ServeMux syntax ({id})
	Role    Role
	Handler handlerFunc
}

// RouteInfo describes a registered route for documentation and tests.
type RouteInfo struct {
	Method string
	Path   string // under BasePath, e.g. "/sandboxes/{id}", unless Root
	Role   Role
	Root   bool
}

// Routes lists every route the API registers, in table order.
func Routes() []RouteInfo {
	rs := (&server{}).routeTable()
	out := make([]RouteInfo, len(rs))
	for i, r := range rs {
		out[i] = RouteInfo{Method: r.Method, Path: r.Path, Role: r.Role, Root: r.root()}
	}
	return out
}

// routeTable is the one table of routes: method, path, required role, handler.
func (s *server) routeTable() []route {
	const (
		get, post, put, del = http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete
		// Roles: pub(lic) < view(er) < op(erator) < tadmin (tenant_admin) <
		// admin; worker only for worker routes. Read-only routes take view.
		pub, view, op, tadmin, admin, worker = RolePublic, RoleViewer, RoleOperator, RoleTenantAdmin, RoleAdmin, RoleWorker
	)
	_ = worker // for worker routes
	return []route{
		{get, "/health", pub, s.health},
		{get, "/live", pub, s.live},
		{get, "/ready", pub, s.ready},
		{get, "/openapi.json", pub, s.openAPI},

		{post, "/sandboxes", op, s.createSandbox},
		{post, "/sandboxes/admission", op, s.admission},
		{get, "/sandboxes", view, s.listSandboxes},
		{del, "/sandboxes", op, s.pruneSandboxes},
		{get, "/sandboxes/{id}", view, s.getSandbox},
		{del, "/sandboxes/{id}", op, s.destroySandbox},
		{post, "/sandboxes/{id}/extend", op, s.extendSandbox},
		{get, "/sandboxes/{id}/logs", view, s.sandboxLogs},
		{get, "/sandboxes/{id}/stats", view, s.sandboxStats},

		{post, "/sandboxes/{id}/exec", op, s.exec},
		{get, "/sandboxes/{id}/exec/ws", op, s.execWS},
		{post, "/sandboxes/{id}/processes", op, s.startProcess},
		{get, "/sandboxes/{id}/processes", op, s.listProcesses},
		{get, "/sandboxes/{id}/processes/{pid}", op, s.getProcess},
		{del, "/sandboxes/{id}/processes/{pid}", op, s.killProcess},
		{get, "/sandboxes/{id}/processes/{pid}/output", op, s.processOutput},
		{post, "/sandboxes/{id}/processes/{pid}/stdin", op, s.processStdin},
		{post, "/sandboxes/{id}/processes/{pid}/signal", op, s.signalProcess},
		{post, "/sandboxes/{id}/processes/{pid}/resize", op, s.resizeProcess},

		{post, "/sandboxes/{id}/files", op, s.writeFile},
		{get, "/sandboxes/{id}/files", op, s.readFile},
		{del, "/sandboxes/{id}/files", op, s.deleteFile},
		{put, "/sandboxes/{id}/files/raw", op, s.uploadFile},
		{get, "/sandboxes/{id}/files/list", view, s.listFiles},
		{get, "/sandboxes/{id}/files/stat", view, s.statFile},
		{get, "/sandboxes/{id}/files/glob", view, s.globFiles},
		{post, "/sandboxes/{id}/files/move", op, s.moveFile},
		{post, "/sandboxes/{id}/files/chmod", op, s.chmodFile},
		{get, "/sandboxes/{id}/files/archive", op, s.downloadArchive},
		{put, "/sandboxes/{id}/files/archive", op, s.uploadArchive},
		{get, "/sandboxes/{id}/files/watch", view, s.watchFiles},
		{post, "/sandboxes/{id}/preview/{port}/token", op, s.mintPreviewToken},

		{get, "/providers", view, s.listProviders},
		{get, "/providers/{name}", view, s.getProvider},
		{post, "/providers/test", op, s.testProviders},

		{post, "/templates", op, s.createTemplate},
		{get, "/templates", view, s.listTemplates},
		{get, "/templates/{name}", view, s.getTemplate},
		{put, "/templates/{name}", op, s.replaceTemplate},
		{del, "/templates/{name}", op, s.deleteTemplate},
		{post, "/templates/{name}/spawn", op, s.spawnTemplate},

		{get, "/quotas", view, s.listQuotas},
		{get, "/quotas/summary", view, s.quotaSummary},
		{get, "/quotas/{owner}", view, s.getQuota},
		{put, "/quotas/{owner}", admin, s.putQuota},
		{del, "/quotas/{owner}", admin, s.deleteQuota},
		{get, "/quotas/{owner}/usage", view, s.quotaUsage},

		{get, "/pool/status", view, s.poolStatus},
		{get, "/pool/warm", view, s.warmPools},

		{get, "/auth/whoami", view, s.whoami},
		{post, "/admin/keys", tadmin, s.createKey},
		{get, "/admin/keys", tadmin, s.listKeys},
		{del, "/admin/keys/{key}", tadmin, s.deleteKey},
		{post, "/admin/tenants", admin, s.createTenant},
		{get, "/admin/tenants", admin, s.listTenants},
		{get, "/admin/tenants/{tenant}", tadmin, s.getTenant},
		{del, "/admin/tenants/{tenant}", admin, s.deleteTenant},
		{get, "/admin/tenants/{tenant}/members", tadmin, s.listMembers},
		{put, "/admin/tenants/{tenant}/members/{user}", tadmin, s.putMember},
		{del, "/admin/tenants/{tenant}/members/{user}", tadmin, s.deleteMember},
		{get, "/admin/tenants/{tenant}/policies", tadmin, s.listPolicies},
		{post, "/admin/tenants/{tenant}/policies", tadmin, s.createPolicy},
		{del, "/admin/tenants/{tenant}/policies/{policy}", tadmin, s.deletePolicy},
		{get, "/admin/audit", tadmin, s.exportAudit},

		{get, "/metrics", op, s.jsonMetrics},
		{get, "/metrics/prometheus", op, s.prometheusMetrics},
		{get, "/events", view, s.streamEvents},
		{get, "/diagnostics", admin, s.diagnostics},
		{get, "/admin/diagnostics", admin, s.diagnostics}, // API.md's /admin/* aliases
		{get, "/admin/metrics", admin, s.jsonMetrics},

		{get, "/debug/pprof/{profile...}", admin, s.pprof},
	}
}

// rootPrefix marks operational routes mounted at the server root instead of
// under BasePath (Go's conventional /debug/pprof/).
const rootPrefix = "/debug/"

func (r route) root() bool { return strings.HasPrefix(r.Path, rootPrefix) }

// fullPath is the pattern path the route is mounted at.
func (r route) fullPath() string {
	if r.root() {
		return r.Path
	}
	return BasePath + r.Path
}
