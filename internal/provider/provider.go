// Package provider defines the small interface every sandbox runtime
// implements (docker, mock, and later vm, proot, remote). Providers only
// create, inspect and destroy runtimes and hand out an agent connection; exec,
// files and ports go through the agent, the same code for every runtime.
package provider

import (
	"context"
	"os"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// Isolation kinds advertised in Capabilities.
const (
	IsolationContainer = "container" // Linux namespaces + cgroups (runc)
	IsolationUserspace = "userspace" // syscall interception (gVisor) or path translation (proot)
	IsolationVM        = "microvm"   // hardware virtualisation
	IsolationNone      = "none"      // host processes (mock): tests only
)

// Network modes a Spec may ask for.
const (
	NetworkNone   = "none"
	NetworkBridge = "bridge"
)

// Labels every runtime carries, so List can find ours after a restart.
const (
	LabelManaged = "stacyvm.managed"    // "true"
	LabelSandbox = "stacyvm.sandbox_id" // the sandbox id
	LabelServer  = "stacyvm.server_id"  // which server instance (data dir) owns it
)

// Spec describes one sandbox runtime to create.
type Spec struct {
	SandboxID string            // "sb-..."; unique; used in names and labels
	Image     string            // local image reference
	MemoryMB  int               // hard memory limit; 0 = provider default
	VCPUs     float64           // CPU limit; 0 = provider default
	PidsLimit int64             // 0 = provider default
	Network   string            // NetworkNone or NetworkBridge; "" = provider default
	Env       map[string]string // environment for every process in the sandbox
	Labels    map[string]string // extra labels (the provider adds its own)
}

// Handle identifies a created runtime. It is persisted in the store, so a
// restarted server can reach the runtime again; it must stay serialisable.
type Handle struct {
	Provider  string            `json:"provider"`
	SandboxID string            `json:"sandbox_id"`
	RuntimeID string            `json:"runtime_id"`     // e.g. the container id
	Data      map[string]string `json:"data,omitempty"` // provider-specific (socket path, ...)
}

// RuntimeState is what a provider observes, not the service's sandbox state.
type RuntimeState string

// Runtime states.
const (
	RuntimeRunning RuntimeState = "running"
	RuntimeStopped RuntimeState = "stopped" // exists but its init has exited
	RuntimeMissing RuntimeState = "missing" // gone
)

// Status is the result of Inspect.
type Status struct {
	State     RuntimeState
	StartedAt time.Time
	ExitCode  int
	Detail    string
}

// Capabilities describe what a provider offers, for the API and scheduler.
type Capabilities struct {
	Isolation    string   `json:"isolation"`
	NetworkModes []string `json:"network_modes"`
	Features     []string `json:"features"` // "exec", "files", "stats", "logs", ...
	// Boundary is false for runtimes that must not be treated as a security
	// boundary (mock, proot).
	Boundary bool `json:"security_boundary"`
}

// Provider is a sandbox runtime. Every method takes a context and returns
// classified errors (internal/errs): Invalid for a bad Spec (e.g. unknown
// image), NotFound for a runtime that is gone, Unavailable when the runtime's
// daemon cannot be reached.
type Provider interface {
	// Name is the provider's configured name ("docker", "mock", ...).
	Name() string
	// Capabilities is constant for the provider's lifetime.
	Capabilities() Capabilities
	// Create starts a runtime and returns once its agent answers a ping.
	// On error nothing is left behind. It must not hold locks shared with
	// other Create calls while waiting on the runtime.
	Create(ctx context.Context, spec Spec) (Handle, error)
	// Inspect reports the runtime's state; a vanished runtime is
	// RuntimeMissing with a nil error.
	Inspect(ctx context.Context, h Handle) (Status, error)
	// Destroy stops and removes the runtime and its host resources. It is
	// idempotent: destroying a missing runtime returns nil.
	Destroy(ctx context.Context, h Handle) error
	// List returns the handles of every runtime this server instance owns
	// (by label), running or not, for reconcile.
	List(ctx context.Context) ([]Handle, error)
	// Agent returns a client for the runtime's agent. Clients are cached by
	// the provider; callers must not Close them.
	Agent(ctx context.Context, h Handle) (*agent.Client, error)
	// Health returns nil when the runtime can create sandboxes now. It must
	// be fast (bounded by ctx); callers cache it.
	Health(ctx context.Context) error
}

// Stats is a point-in-time resource reading.
type Stats struct {
	CPUPercent    float64 `json:"cpu_pct"`
	MemBytes      uint64  `json:"mem_bytes"`
	MemLimitBytes uint64  `json:"mem_limit_bytes"`
}

// StatsReporter is implemented by providers that can read resource usage.
type StatsReporter interface {
	Stats(ctx context.Context, h Handle) (Stats, error)
}

// LogReader is implemented by providers that keep the runtime's console log
// (the agent's own log lines).
type LogReader interface {
	Logs(ctx context.Context, h Handle, lines int) ([]string, error)
}

// Host check outcomes, for doctor and runtime certification.
const (
	CheckPass         = "PASS"
	CheckFail         = "FAIL"
	CheckNotInstalled = "NOT INSTALLED"
)

// HostCheck is one host-level precondition of a runtime (binary present,
// daemon reachable, runtime registered, /dev/kvm usable, kernel present...).
// Provider packages export `HostChecks(ctx, Config) []HostCheck`, which must
// work even when the runtime is not installed (that is a NOT INSTALLED
// result, never a PASS).
type HostCheck struct {
	Name   string `json:"name"`
	Status string `json:"status"` // CheckPass, CheckFail or CheckNotInstalled
	Detail string `json:"detail,omitempty"`
	Remedy string `json:"remedy,omitempty"` // an exact command or docs anchor
}

// HostFS is implemented by providers whose sandbox filesystem the server can
// reach directly from the host, as the sandbox's processes see it (mounts
// included). The file service uses it for large uploads: one copy on the
// host instead of a second HTTP hop through the agent. HostRoot returns
// ok=false whenever that is not exactly equivalent to the agent writing
// (another OCI runtime, user namespaces, a non-root sandbox user, a runtime
// that is gone); callers then use the agent. The caller closes the Root.
type HostFS interface {
	HostRoot(ctx context.Context, h Handle) (root *os.Root, ok bool)
}
