package sandbox

import (
	"time"

	"github.com/stacyvm/stacyvm/internal/provider"
)

// Sandbox is the service's view of one sandbox.
type Sandbox struct {
	ID        string
	State     State
	Provider  string
	Image     string
	MemoryMB  int
	VCPUs     float64
	Network   string
	OwnerID   string
	TenantID  string
	Metadata  map[string]string
	CreatedAt time.Time
	ExpiresAt time.Time
	Error     string
}

// CreateRequest asks for a new sandbox. Zero fields take configured defaults.
type CreateRequest struct {
	Image    string
	Provider string
	MemoryMB int
	VCPUs    float64
	TTL      time.Duration // 0 = default ttl; must not be negative
	Network  string        // "", "none" or "bridge"
	OwnerID  string
	TenantID string
	Metadata map[string]string
	Env      map[string]string
	// Template names a template to spawn from; the fields above that are
	// set override the template's (an Image that differs is refused).
	Template string
}

// Admission answers "would a create be allowed now?" (API.md shape).
type Admission struct {
	Allowed              bool
	Queueable            bool
	Reason               string
	ActiveSandboxes      int
	MaxSandboxes         int
	ActiveOwnerSandboxes int
	MaxOwnerSandboxes    int
	MaxTTL               time.Duration
}

// ListFilter selects sandboxes. Destroyed sandboxes are never listed.
type ListFilter struct {
	OwnerID  string
	TenantID string
	State    State
	Labels   map[string]string
	Limit    int
	Cursor   string
}

// Exec modes.
const (
	ModeShell = "shell"
	ModeArgv  = "argv"
)

// ExecRequest runs one command in a sandbox.
type ExecRequest struct {
	Command string
	Args    []string
	Mode    string // ModeShell (default) or ModeArgv
	Env     map[string]string
	Workdir string
	Timeout time.Duration // 0 = the configured default; negative is Invalid
}

// ExecResult is a finished command. A timed-out command has TimedOut set and
// ExitCode -1; its process group was killed.
type ExecResult struct {
	ExitCode int
	TimedOut bool
	Duration time.Duration
}

// ProviderInfo describes one configured provider for /providers.
type ProviderInfo struct {
	Name         string
	Default      bool
	Healthy      bool
	Error        string
	LatencyMS    int64
	LastChecked  time.Time
	Capabilities provider.Capabilities
}

// Stats is a resource reading; Supported is false for providers without one.
type Stats struct {
	Supported bool
	provider.Stats
}
