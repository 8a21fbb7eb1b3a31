// Package mock is a provider that runs the real stacyvm-agent as a plain
// host process per sandbox, rooted in a directory. It has real semantics
// (state survives a server restart, processes die on destroy, failures can be
// scripted) but no isolation at all: tests only, never a security boundary.
package mock

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// Config configures the mock provider.
type Config struct {
	Name      string // provider name; default "mock"
	DataDir   string // absolute; sandboxes live in <DataDir>/mock/<id>/
	AgentPath string // absolute path of the stacyvm-agent binary
	ServerID  string // owner recorded in each sandbox's state file; required
	// FailCreate, when set, is called first by Create; a non-nil result
	// is returned as Create's error (scriptable failures).
	FailCreate func(spec provider.Spec) error
	// CreateDelay is slept (bounded by ctx) before creating, to simulate
	// a slow runtime.
	CreateDelay time.Duration
}

// maxIDLen keeps <DataDir>/mock/<id>/agent.sock short enough for a unix
// socket address.
const maxIDLen = 40

// Provider runs one agent process per sandbox. Safe for concurrent use.
type Provider struct {
	cfg Config
	log *slog.Logger

	agents hostproc.Clients // by sandbox id

	mu    sync.Mutex
	procs map[string]*hostproc.Proc // children started by this instance
}

// state is the handle.json persisted next to each sandbox, so a new
// Provider on the same DataDir can list and inspect it.
type state struct {
	SandboxID string            `json:"sandbox_id"`
	ServerID  string            `json:"server_id"`
	PID       int               `json:"pid"`
	Socket    string            `json:"socket"`
	Root      string            `json:"root"`
	StartedAt time.Time         `json:"started_at"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// New validates cfg and returns a Provider.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Name == "" {
		cfg.Name = "mock"
	}
	switch {
	case cfg.ServerID == "":
		return nil, errs.New(errs.Invalid, "mock provider: server id is required")
	case !filepath.IsAbs(cfg.DataDir):
		return nil, errs.New(errs.Invalid, "mock provider: data dir %q must be absolute", cfg.DataDir)
	case !filepath.IsAbs(cfg.AgentPath):
		return nil, errs.New(errs.Invalid, "mock provider: agent path %q must be absolute", cfg.AgentPath)
	}
	cfg.DataDir = filepath.Clean(cfg.DataDir)
	if n := len(filepath.Join(cfg.DataDir, "mock", string(make([]byte, maxIDLen)), "agent.sock")); n > 107 {
		return nil, errs.New(errs.Invalid, "mock provider: data dir %q is too long for unix socket paths", cfg.DataDir)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "mock"), 0o700); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "create mock data dir")
	}
	return &Provider{
		cfg:   cfg,
		log:   log.With("provider", cfg.Name),
		procs: map[string]*hostproc.Proc{},
	}, nil
}

// Close releases cached agent clients. Sandboxes keep running.
func (p *Provider) Close() error {
	p.agents.CloseAll()
	return nil
}

// Name returns the configured provider name.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities: no isolation, not a boundary. Network modes are accepted
// but not enforced (processes share the host's network).
func (p *Provider) Capabilities() provider.Capabilities {
	return provider.Capabilities{
		Isolation:    provider.IsolationNone,
		NetworkModes: []string{provider.NetworkNone, provider.NetworkBridge},
		Features:     []string{"exec", "files", "logs"},
		Boundary:     false,
	}
}

// Health checks the agent binary and the data dir.
func (p *Provider) Health(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errs.Wrap(errs.Unavailable, err, "request cancelled")
	}
	if fi, err := os.Stat(p.cfg.AgentPath); err != nil || !fi.Mode().IsRegular() {
		return errs.New(errs.Unavailable, "agent binary %q is missing", p.cfg.AgentPath)
	}
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, "mock")); err != nil {
		return errs.Wrap(errs.Unavailable, err, "mock data dir missing")
	}
	return nil
}

func (p *Provider) dir(id string) string    { return filepath.Join(p.cfg.DataDir, "mock", id) }
func (p *Provider) socket(id string) string { return filepath.Join(p.dir(id), "agent.sock") }

func validID(id string) error { return provider.ValidSandboxID(id, maxIDLen) }

// Owner names the server and sandbox the state belongs to.
func (st state) Owner() (serverID, sandboxID string) { return st.ServerID, st.SandboxID }

func (p *Provider) readState(id string) (state, error) {
	var st state
	err := hostproc.ReadState(filepath.Join(p.dir(id), "handle.json"), &st, "mock state for "+id)
	return st, err
}

func writeState(dir string, st state) error {
	return hostproc.WriteState(filepath.Join(dir, "handle.json"), st)
}

func (p *Provider) handle(st state) provider.Handle {
	return provider.Handle{
		Provider:  p.cfg.Name,
		SandboxID: st.SandboxID,
		RuntimeID: "pid-" + strconv.Itoa(st.PID),
		Data:      map[string]string{"socket": st.Socket, "root": st.Root},
	}
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.LogReader = (*Provider)(nil)
)
