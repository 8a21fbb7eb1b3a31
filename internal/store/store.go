// Package store defines StacyVM's persistence, split by aggregate. SQLite
// (embedded default) implements it in store/sqlite; storetest is the contract
// every implementation passes.
package store

import (
	"context"
	"time"
)

// Sandbox is the persisted record of one sandbox. The service owns its
// meaning (states, transitions); the store only keeps it.
type Sandbox struct {
	ID        string
	State     string // see sandbox.State
	Provider  string
	Image     string
	MemoryMB  int
	VCPUs     float64
	Network   string
	OwnerID   string
	TenantID  string
	Metadata  map[string]string
	Env       map[string]string
	Handle    []byte // provider.Handle as JSON; nil until the runtime exists
	Error     string // last failure, caller-safe text
	CreatedAt time.Time
	UpdatedAt time.Time
	ExpiresAt time.Time
	// DestroyedAt is set when State becomes destroyed; zero otherwise.
	DestroyedAt time.Time
}

// SandboxFilter selects sandboxes for List. Zero fields do not filter.
type SandboxFilter struct {
	States   []string // any of these states
	OwnerID  string
	TenantID string
	Provider string
	Labels   map[string]string // metadata key=value, all must match
	// ExpiredBefore selects sandboxes whose ExpiresAt is before this time.
	ExpiredBefore time.Time
	// Limit caps the result (0 = no cap); Cursor continues after a previous
	// page: it is the ID of the last sandbox seen.
	Limit  int
	Cursor string
}

// Sandboxes stores sandbox records. Errors are classified (internal/errs):
// NotFound for an unknown id, Conflict for a duplicate id.
type Sandboxes interface {
	// Create inserts a new record; a duplicate ID is Conflict.
	Create(ctx context.Context, sb *Sandbox) error
	// Get returns the record, whatever its state.
	Get(ctx context.Context, id string) (*Sandbox, error)
	// Update reads the record, calls fn on it and writes the result, all in
	// one transaction; if fn returns an error nothing is written and that
	// error is returned. UpdatedAt is set by the store.
	Update(ctx context.Context, id string, fn func(sb *Sandbox) error) (*Sandbox, error)
	// List returns matching records, newest first (CreatedAt desc, then ID desc).
	List(ctx context.Context, f SandboxFilter) ([]*Sandbox, error)
	// Count returns how many records match f (Limit and Cursor ignored).
	Count(ctx context.Context, f SandboxFilter) (int, error)
	// Purge deletes records destroyed before the given time; returns how many.
	Purge(ctx context.Context, destroyedBefore time.Time) (int, error)
}

// Store is the whole persistence layer.
type Store interface {
	Sandboxes() Sandboxes
	Templates() Templates
	Quotas() Quotas
	// Ping checks the database answers.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}
