// Package mock is a provider that runs the real stacyvm-agent as a plain
// host process per sandbox, rooted in a directory. It has real semantics
// (state survives a server restart, processes die on destroy, failures can be
// scripted) but no isolation at all: tests only, never a security boundary.
package mock

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
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

	mu     sync.Mutex
	agents map[string]*agent.Client // by sandbox id
	procs  map[string]*proc         // children started by this instance
}

// proc is an agent process this instance started and reaps.
type proc struct {
	pid      int
	done     chan struct{} // closed once reaped
	exitCode int           // valid after done
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
		cfg:    cfg,
		log:    log.With("provider", cfg.Name),
		agents: map[string]*agent.Client{},
		procs:  map[string]*proc{},
	}, nil
}

// Close releases cached agent clients. Sandboxes keep running.
func (p *Provider) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, c := range p.agents {
		c.Close()
		delete(p.agents, id)
	}
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

func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return errs.New(errs.Invalid, "sandbox id must be 1 to %d characters", maxIDLen)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return errs.New(errs.Invalid, "sandbox id %q has characters outside [A-Za-z0-9_.-]", id)
		}
	}
	return nil
}

func (p *Provider) readState(id string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(p.dir(id), "handle.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, errs.Wrap(errs.Internal, err, "corrupt mock state for %s", id)
	}
	return st, nil
}

func writeState(dir string, st state) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "handle.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "handle.json"))
}

func (p *Provider) handle(st state) provider.Handle {
	return provider.Handle{
		Provider:  p.cfg.Name,
		SandboxID: st.SandboxID,
		RuntimeID: "pid-" + itoa(st.PID),
		Data:      map[string]string{"socket": st.Socket, "root": st.Root},
	}
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.LogReader = (*Provider)(nil)
)
