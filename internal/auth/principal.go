// Package auth holds StacyVM's identity and authorization decisions: the
// Principal a request acts as, role ordering (RBAC), API key hashing and
// lookup, OIDC token verification, and the validation of user ids and
// policy patterns. It has no HTTP handlers; internal/api turns requests into
// Principals and internal/sandbox reads them from the context.
package auth

import (
	"context"
	"strings"
	"unicode"

	"github.com/stacyvm/stacyvm/internal/errs"
)

// Role is a principal's privilege level, and the least privilege a route
// requires.
type Role string

// The roles. viewer < operator < tenant_admin < admin form a ladder; worker
// stands apart (worker routes only).
const (
	RolePublic      Role = "public"       // anyone, without credentials
	RoleViewer      Role = "viewer"       // read-only access to its tenant
	RoleOperator    Role = "operator"     // create and use sandboxes in its tenant
	RoleTenantAdmin Role = "tenant_admin" // operator + manage its tenant's members, keys and policies
	RoleAdmin       Role = "admin"        // everything, every tenant
	RoleWorker      Role = "worker"       // a cluster worker: worker routes only
)

// Roles lists every role a principal can hold, weakest first (worker last).
func Roles() []Role {
	return []Role{RolePublic, RoleViewer, RoleOperator, RoleTenantAdmin, RoleAdmin, RoleWorker}
}

// rank orders the ladder; an unknown role ranks above every known one, so a
// typo in the route table locks a route rather than opening it.
func (r Role) rank() int {
	switch r {
	case RolePublic:
		return 0
	case RoleViewer:
		return 5
	case RoleOperator:
		return 10
	case RoleTenantAdmin:
		return 50
	case RoleAdmin:
		return 100
	default:
		return 1 << 30
	}
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	return r == RoleWorker || r.rank() < 1<<30
}

// ParseRole returns the role named s, or Invalid.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() || r == RolePublic {
		return "", errs.New(errs.Invalid, "unknown role %q (want viewer, operator, tenant_admin, admin or worker)", s)
	}
	return r, nil
}

// Allows reports whether a principal holding r may call a route requiring
// need. Worker routes take only workers, and workers take nothing else.
func (r Role) Allows(need Role) bool {
	if need == RolePublic {
		return true
	}
	if need == RoleWorker || r == RoleWorker {
		return r == need
	}
	return r.rank() >= need.rank()
}

// Auth methods, for logs and audit.
const (
	MethodNone      = "none" // no credentials configured: local single-user mode
	MethodAnon      = "anonymous"
	MethodAPIKey    = "api_key"
	MethodAdminKey  = "admin_key"
	MethodStoredKey = "stored_key" // a key created through the admin API
	MethodOIDC      = "oidc"
)

// DefaultTenant owns everything created by a principal without a tenant.
const DefaultTenant = "default"

// Principal is who a request acts as.
type Principal struct {
	// Subject identifies the caller: "key:<id>" for keys, the token's subject
	// for OIDC, "local" in single-user mode.
	Subject string
	Role    Role
	// Tenant scopes what the principal sees; admins see every tenant.
	Tenant string
	Method string
	// ActForUsers lets the caller name another owner (X-User-ID, owner_id):
	// set for service keys that front many users, never for a person's token.
	ActForUsers bool
	// RemoteAddr and RequestID say where the request came from, for audit.
	// RemoteAddr is the TCP peer, never a client-supplied header.
	RemoteAddr string
	RequestID  string
}

// Actor names p in audit rows: its subject, or "system" for the server.
func (p *Principal) Actor() string {
	if p == nil {
		return "system"
	}
	if p.Subject == "" {
		return p.Method
	}
	return p.Subject
}

// IsAdmin reports whether p sees and touches every tenant.
func (p *Principal) IsAdmin() bool { return p != nil && p.Role == RoleAdmin }

// CanSee reports whether p may see an object of tenant. A nil principal is
// the system itself (reaper, reconcile), which sees everything.
func (p *Principal) CanSee(tenant string) bool {
	if p == nil || p.IsAdmin() {
		return true
	}
	if p.Role == RolePublic || p.Role == RoleWorker {
		return false
	}
	return tenant == p.Tenant
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal of ctx, nil when there is none (a call
// made by the server itself).
func FromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}

// MaxUserIDLen bounds user and owner ids.
const MaxUserIDLen = 128

// ValidUserID checks an owner or user id (X-User-ID, owner_id): at most 128
// characters, no whitespace, control characters, '/' or '\'. "" is valid
// (not set).
func ValidUserID(field, v string) error {
	if len(v) > MaxUserIDLen {
		return errs.New(errs.Invalid, "%s must be at most %d characters", field, MaxUserIDLen)
	}
	for _, c := range v {
		if c == '/' || c == '\\' || unicode.IsSpace(c) || unicode.IsControl(c) || c == unicode.ReplacementChar {
			return errs.New(errs.Invalid, "%s must not contain whitespace, control characters, '/' or '\\'", field)
		}
	}
	return nil
}

// ValidTenantID checks a tenant id: 1-64 characters of [a-z0-9._-],
// starting with a letter or digit.
func ValidTenantID(v string) error {
	if v == "" || len(v) > 64 {
		return errs.New(errs.Invalid, "tenant id must be 1-64 characters")
	}
	for i, c := range v {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (i > 0 && strings.ContainsRune("._-", c))
		if !ok {
			return errs.New(errs.Invalid, "tenant id %q may only hold lowercase letters, digits, '.', '_' and '-' (not first)", v)
		}
	}
	return nil
}
