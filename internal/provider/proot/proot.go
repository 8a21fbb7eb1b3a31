// Package proot is the provider for restricted hosts: each sandbox is a
// private copy of an image's filesystem, and every command of the sandbox
// runs in it under PRoot (ptrace-based path translation, Debian's `proot`).
//
// PRoot is NOT AN ISOLATION BOUNDARY. Sandbox processes are ordinary host
// processes: their syscalls, signals and network reach the host kernel
// unfiltered; only file paths are translated. Capabilities say so
// (security_boundary false), and docs/providers.md says it loudly. Use it
// where containers and VMs are unavailable and the code is trusted.
//
// The stacyvm-agent of a sandbox runs on the host with --root (every file
// path and symlink confined to the sandbox's root) and runs each exec
// through a per-sandbox wrapper that starts a fresh proot on that root, so
// exec and the file API see the same paths. (An agent traced by proot
// corrupts its own children: Go spawns with vfork, which proot 5.1 does
// not survive; see docs/decisions/017-proot-rootfs.md.)
//
// Layout under Config.DataDir:
//
//	images/<image id>/rootfs/   an image's exported filesystem, made once (cached)
//	images/<image id>/meta.json its env and working dir
//	sb/<id>/root/               the sandbox's own copy of rootfs (copy-on-write
//	                            where the filesystem reflinks, else a full copy)
//	sb/<id>/exec                the exec wrapper (a proot command line)
//	sb/<id>/run/agent.sock      the agent's socket
//	sb/<id>/handle.json         state for Inspect/List after a server restart
//	sb/<id>/console.log         the agent's own log
//
// See docs/decisions/017-proot-rootfs.md.
package proot

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/dockerhost"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// NetworkHost is the only network mode: sandboxes share the host's network.
const NetworkHost = "host"

// Names of the agent's socket and default working directory.
const (
	socketName = "agent.sock"
	workdir    = "/workspace"
)

// MaxSandboxIDLen bounds ids so <DataDir>/sb/<id>/run/agent.sock fits in a
// unix socket address.
const MaxSandboxIDLen = 40

const maxSocketPath = 107

// Config configures the proot provider.
type Config struct {
	Name       string // provider name; default "proot"
	Binary     string // proot executable; default "proot" from PATH
	DataDir    string // absolute; required
	AgentPath  string // absolute path of the static stacyvm-agent; required
	ServerID   string // owner recorded in each sandbox's state; required
	DockerHost string // engine the images are exported from; "" = DOCKER_HOST or the default socket

	DefaultMemoryMB int     // default 512; enforced with cgroup v1 when available
	DefaultCPUs     float64 // default 1; likewise
	PidsLimit       int64   // default 256; likewise
}

// Provider runs sandboxes as proot-translated process trees. Safe for
// concurrent use; no lock is held while a runtime starts.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	binary  string // resolved proot path ("" when not installed)
	cli     *client.Client
	cgroups *cgroups // nil when cgroup v1 is not writable: no limits

	imgMu    sync.Mutex
	building map[string]*sync.Mutex // per image id

	agents hostproc.Clients // by sandbox id

	mu    sync.Mutex
	procs map[string]*hostproc.Proc // processes this instance started
}

// state is handle.json.
type state struct {
	SandboxID string            `json:"sandbox_id"`
	ServerID  string            `json:"server_id"`
	PID       int               `json:"pid"`
	Root      string            `json:"root"`
	Image     string            `json:"image"`
	ImageID   string            `json:"image_id"`
	StartedAt time.Time         `json:"started_at"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// New validates cfg and returns a Provider. A missing proot binary is not
// an error here: Health reports it, so the server can still list the
// provider as unhealthy.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"images", "sb"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, errs.Wrap(errs.Internal, err, "create proot data dir")
		}
	}
	cli, err := dockerhost.NewClient(cfg.DockerHost)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "docker client for host %q", cfg.DockerHost)
	}
	p := &Provider{
		cfg:      cfg,
		log:      log.With("provider", cfg.Name),
		cli:      cli,
		building: map[string]*sync.Mutex{},
		procs:    map[string]*hostproc.Proc{},
	}
	p.binary, _ = exec.LookPath(cfg.Binary)
	p.cgroups = probeCgroups("stacyvm-proot")
	if p.cgroups == nil {
		p.log.Warn("cgroup v1 is not writable: proot sandboxes run without memory, cpu and pids limits")
	}
	p.log.Warn("proot is not an isolation boundary: sandbox processes are host processes with translated paths")
	return p, nil
}

func withDefaults(cfg Config) (Config, error) {
	if cfg.Name == "" {
		cfg.Name = "proot"
	}
	if cfg.Binary == "" {
		cfg.Binary = "proot"
	}
	if cfg.DefaultMemoryMB == 0 {
		cfg.DefaultMemoryMB = 512
	}
	if cfg.DefaultCPUs == 0 {
		cfg.DefaultCPUs = 1
	}
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = 256
	}
	switch {
	case cfg.ServerID == "":
		return cfg, errs.New(errs.Invalid, "proot provider: server id is required")
	case !filepath.IsAbs(cfg.DataDir):
		return cfg, errs.New(errs.Invalid, "proot provider: data dir %q must be an absolute path", cfg.DataDir)
	case !filepath.IsAbs(cfg.AgentPath):
		return cfg, errs.New(errs.Invalid, "proot provider: agent path %q must be an absolute path", cfg.AgentPath)
	case cfg.DefaultMemoryMB < 16 || cfg.DefaultCPUs < 0 || cfg.PidsLimit < 0:
		return cfg, errs.New(errs.Invalid, "proot provider: resource defaults out of range (memory >= 16 MB, cpus >= 0, pids >= 0)")
	}
	cfg.DataDir = filepath.Clean(cfg.DataDir)
	longest := filepath.Join(cfg.DataDir, "sb", strings.Repeat("x", MaxSandboxIDLen), "run", socketName)
	if len(longest) > maxSocketPath {
		return cfg, errs.New(errs.Invalid, "proot provider: data dir %q is too long for unix sockets (%d bytes, max %d); use a shorter data dir",
			cfg.DataDir, len(longest), maxSocketPath)
	}
	return cfg, nil
}

// Close releases cached clients. Sandboxes keep running.
func (p *Provider) Close() error {
	p.agents.CloseAll()
	return p.cli.Close()
}

// Name returns the configured provider name.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities: userspace path translation, NOT a security boundary; the
// host's network is shared (no none/bridge). "limits" is listed only when
// cgroup v1 enforces memory, cpu and pids.
func (p *Provider) Capabilities() provider.Capabilities {
	return DeclaredCapabilities(p.cgroups != nil)
}

// DeclaredCapabilities is what the provider advertises; withLimits is
// whether cgroup v1 enforces memory, cpu and pids limits on this host.
func DeclaredCapabilities(withLimits bool) provider.Capabilities {
	features := []string{"exec", "files", "logs"}
	if withLimits {
		features = append(features, "limits")
	}
	return provider.Capabilities{
		Isolation:    provider.IsolationUserspace,
		NetworkModes: []string{NetworkHost},
		Features:     features,
		Boundary:     false,
	}
}

// Health checks the proot binary, the agent binary and the data dir.
func (p *Provider) Health(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errs.Wrap(errs.Unavailable, err, "request cancelled")
	}
	if p.binary == "" {
		if b, err := exec.LookPath(p.cfg.Binary); err == nil {
			p.mu.Lock()
			p.binary = b
			p.mu.Unlock()
		} else {
			return errs.New(errs.Unavailable, "proot is not installed (%s not found on PATH)", p.cfg.Binary)
		}
	}
	if fi, err := os.Stat(p.cfg.AgentPath); err != nil || !fi.Mode().IsRegular() {
		return errs.New(errs.Unavailable, "agent binary %q is missing", p.cfg.AgentPath)
	}
	if _, err := os.Stat(filepath.Join(p.cfg.DataDir, "sb")); err != nil {
		return errs.Wrap(errs.Unavailable, err, "proot data dir missing")
	}
	return nil
}

func (p *Provider) prootBinary() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.binary
}

func (p *Provider) dir(id string) string    { return filepath.Join(p.cfg.DataDir, "sb", id) }
func (p *Provider) socket(id string) string { return filepath.Join(p.dir(id), "run", socketName) }

// validID accepts ids that are safe as a path element.
func validID(id string) error { return provider.ValidSandboxID(id, MaxSandboxIDLen) }

// Owner names the server and sandbox the state belongs to.
func (st state) Owner() (serverID, sandboxID string) { return st.ServerID, st.SandboxID }

func (p *Provider) readState(id string) (state, error) {
	var st state
	err := hostproc.ReadState(filepath.Join(p.dir(id), "handle.json"), &st, "proot state for "+id)
	return st, err
}

func writeState(dir string, st state) error {
	return hostproc.WriteState(filepath.Join(dir, "handle.json"), st)
}

func (p *Provider) handle(st state) provider.Handle {
	return provider.Handle{
		Provider:  p.cfg.Name,
		SandboxID: st.SandboxID,
		RuntimeID: fmt.Sprintf("proot-%d", st.PID),
		Data:      map[string]string{"socket": p.socket(st.SandboxID), "root": st.Root},
	}
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.LogReader = (*Provider)(nil)
)
