package store

import (
	"context"
	"time"
)

// Template is a named, versioned sandbox recipe (API.md "Templates"),
// scoped to a tenant ("" = the default tenant).
type Template struct {
	TenantID     string
	Name         string
	Version      int // 1 on create, +1 on every update
	Image        string
	Description  string
	Setup        []string // shell commands run once after each spawn
	AllowedHosts []string
	MemoryMB     int
	CPUCores     float64
	TTLSeconds   int
	Env          map[string]string
	Secrets      []TemplateSecret
	PoolSize     int
	Provider     string
	Network      string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// TemplateSecret names a secret a template wants injected.
type TemplateSecret struct {
	Name     string `json:"name"`
	InjectAt string `json:"inject_at"`
}

// Templates stores templates. Unknown (tenant, name) is NotFound; creating
// an existing one is Conflict.
type Templates interface {
	Create(ctx context.Context, t *Template) error
	Get(ctx context.Context, tenantID, name string) (*Template, error)
	// List returns the tenant's templates by name; allTenants ignores
	// tenantID and returns every tenant's.
	List(ctx context.Context, tenantID string, allTenants bool) ([]*Template, error)
	// Update reads, calls fn and writes in one transaction, raising Version
	// and UpdatedAt; fn must not change TenantID or Name.
	Update(ctx context.Context, tenantID, name string, fn func(t *Template) error) (*Template, error)
	Delete(ctx context.Context, tenantID, name string) error
}

// Quota caps one owner (API.md "quotas"). Zero fields do not limit.
type Quota struct {
	Owner          string
	MaxSandboxes   int
	MaxTTL         time.Duration
	MaxExecTimeout time.Duration
	UpdatedAt      time.Time
}

// Quotas stores per-owner quotas. Unknown owner is NotFound.
type Quotas interface {
	// Put creates or replaces the owner's quota; it sets UpdatedAt.
	Put(ctx context.Context, q *Quota) error
	Get(ctx context.Context, owner string) (*Quota, error)
	// List returns every quota by owner.
	List(ctx context.Context) ([]*Quota, error)
	Delete(ctx context.Context, owner string) error
}
