package store

import (
	"context"
	"time"
)

// Tenant is a group of users and the objects they own.
type Tenant struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Member is a user's role in a tenant.
type Member struct {
	TenantID  string
	UserID    string
	Role      string
	CreatedAt time.Time
}

// Policy is one allow/deny rule of a tenant (see auth.Rule).
type Policy struct {
	ID        string
	TenantID  string
	Kind      string
	Effect    string
	Pattern   string
	Priority  int
	CreatedAt time.Time
}

// APIKey is a key created through the admin API. Only its hash is stored.
type APIKey struct {
	ID          string
	Hash        string
	Name        string
	Role        string
	TenantID    string
	ActForUsers bool
	CreatedBy   string
	CreatedAt   time.Time
}

// Audit event kinds.
const (
	AuditOp    = "op"
	AuditAdmin = "admin"
)

// AuditEvent is one audit row. Detail never holds secrets, file contents or
// command output.
type AuditEvent struct {
	Seq        int64
	At         time.Time
	Kind       string
	TenantID   string
	Actor      string
	Action     string
	Target     string
	Detail     string
	RemoteAddr string
	Result     string
	RequestID  string
}

// AuditFilter selects audit events; zero fields do not filter.
type AuditFilter struct {
	Kind     string
	TenantID string
	Since    time.Time
	// AfterSeq continues a listing; Limit caps it (0 = no cap).
	AfterSeq int64
	Limit    int
}

// Tenants stores tenants, members and policies. Deleting a tenant deletes
// its members and policies. Unknown ids are NotFound, duplicates Conflict.
type Tenants interface {
	Create(ctx context.Context, t *Tenant) error
	Get(ctx context.Context, id string) (*Tenant, error)
	List(ctx context.Context) ([]*Tenant, error)
	Delete(ctx context.Context, id string) error
	// PutMember adds or replaces a member.
	PutMember(ctx context.Context, m *Member) error
	DeleteMember(ctx context.Context, tenantID, userID string) error
	// GetMember returns one member (NotFound when the user is not one).
	GetMember(ctx context.Context, tenantID, userID string) (*Member, error)
	ListMembers(ctx context.Context, tenantID string) ([]*Member, error)
	CreatePolicy(ctx context.Context, p *Policy) error
	// DeletePolicy deletes policy id of tenantID (NotFound when it belongs
	// to another tenant).
	DeletePolicy(ctx context.Context, tenantID, id string) error
	// ListPolicies returns a tenant's policies, highest priority first.
	ListPolicies(ctx context.Context, tenantID string) ([]*Policy, error)
}

// Keys stores API keys by hash.
type Keys interface {
	Create(ctx context.Context, k *APIKey) error
	GetByHash(ctx context.Context, hash string) (*APIKey, error)
	// List returns keys of tenantID, or every key when tenantID is "".
	List(ctx context.Context, tenantID string) ([]*APIKey, error)
	Delete(ctx context.Context, id string) error
}

// Audit is the append-only audit log.
type Audit interface {
	Append(ctx context.Context, e *AuditEvent) error
	// List returns matching events, oldest first.
	List(ctx context.Context, f AuditFilter) ([]*AuditEvent, error)
	// Prune deletes events older than before and returns how many.
	Prune(ctx context.Context, before time.Time) (int, error)
}

// Governance is the security side of the store. It is a separate interface
// so stores that predate it keep compiling; the SQLite store implements it.
type Governance interface {
	Tenants() Tenants
	Keys() Keys
	Audit() Audit
}
