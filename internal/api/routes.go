package api

import (
	"net/http"
	"strings"
)

// Role is the least privilege a route requires. Roles are ordered: a
// principal holding a role may call every route that requires it or less.
type Role string

// The roles known today. A later change adds viewer, admin and tenant_admin;
// only Role.rank and the auth middleware need to learn them.
const (
	RolePublic   Role = "public"   // anyone, without credentials
	RoleOperator Role = "operator" // a valid API key
	RoleAdmin    Role = "admin"    // a valid admin key (or no key configured: local single-user mode)
)

// rank orders roles; an unknown role ranks above every known one, so a typo
// in the table locks a route rather than opening it.
func (r Role) rank() int {
	switch r {
	case RolePublic:
		return 0
	case RoleOperator:
		return 10
	case RoleAdmin:
		return 100
	default:
		return 1 << 30
	}
}

// Allows reports whether a principal holding r may call a route requiring need.
func (r Role) Allows(need Role) bool { return r.rank() >= need.rank() }

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
		pub, op, admin      = RolePublic, RoleOperator, RoleAdmin
	)
	return []route{
		{get, "/health", pub, s.health},
		{get, "/live", pub, s.live},
		{get, "/ready", pub, s.ready},
		{get, "/openapi.json", pub, s.openAPI},

		{post, "/sandboxes", op, s.createSandbox},
		{post, "/sandboxes/admission", op, s.admission},
		{get, "/sandboxes", op, s.listSandboxes},
		{del, "/sandboxes", op, s.pruneSandboxes},
		{get, "/sandboxes/{id}", op, s.getSandbox},
		{del, "/sandboxes/{id}", op, s.destroySandbox},
		{post, "/sandboxes/{id}/extend", op, s.extendSandbox},
		{get, "/sandboxes/{id}/logs", op, s.sandboxLogs},
		{get, "/sandboxes/{id}/stats", op, s.sandboxStats},

		{post, "/sandboxes/{id}/exec", op, s.exec},

		{post, "/sandboxes/{id}/files", op, s.writeFile},
		{get, "/sandboxes/{id}/files", op, s.readFile},
		{del, "/sandboxes/{id}/files", op, s.deleteFile},
		{put, "/sandboxes/{id}/files/raw", op, s.uploadFile},
		{get, "/sandboxes/{id}/files/list", op, s.listFiles},
		{get, "/sandboxes/{id}/files/stat", op, s.statFile},
		{get, "/sandboxes/{id}/files/glob", op, s.globFiles},
		{post, "/sandboxes/{id}/files/move", op, s.moveFile},
		{post, "/sandboxes/{id}/files/chmod", op, s.chmodFile},

		{get, "/providers", op, s.listProviders},
		{get, "/providers/{name}", op, s.getProvider},
		{post, "/providers/test", op, s.testProviders},

		{get, "/pool/status", op, s.poolStatus},
		{get, "/pool/warm", op, s.warmPools},

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
