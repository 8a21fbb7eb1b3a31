// Package docker is the provider that runs each sandbox as a hardened Docker
// container whose PID 1 is stacyvm-agent. The agent binary is bind-mounted
// read-only from the host; the host reaches it over a unix socket in a
// per-sandbox directory (<DataDir>/sb/<id>/) that is bind-mounted read-write
// at /.stacyvm/run.
package docker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// Paths inside every container.
const (
	agentInContainer  = "/.stacyvm/bin/stacyvm-agent"
	runDirInContainer = "/.stacyvm/run"
	socketName        = "agent.sock"
	workdir           = "/workspace"
)

// MaxSandboxIDLen bounds sandbox ids so that <DataDir>/sb/<id>/agent.sock
// always fits in a unix socket address (108 bytes on Linux, NUL included).
// New rejects a DataDir too long for an id of this length, so Create never
// meets a socket path it cannot dial.
const MaxSandboxIDLen = 40

// maxSocketPath is sizeof(sockaddr_un.sun_path) minus the terminating NUL.
const maxSocketPath = 107

// Config configures the docker provider. Zero values take the defaults
// documented on each field.
type Config struct {
	Name            string        // provider name; default "docker"
	Host            string        // engine address; "" = DOCKER_HOST or the default socket
	Runtime         string        // OCI runtime: "" (engine default, runc), "runc", "runsc", "kata"
	DataDir         string        // absolute host dir for per-sandbox sockets; required
	AgentPath       string        // absolute host path of the static stacyvm-agent; required
	ServerID        string        // value of the stacyvm.server_id label; required
	DefaultNetwork  string        // "none" (default) or "bridge"
	DefaultMemoryMB int           // default 512
	DefaultCPUs     float64       // default 1
	PidsLimit       int64         // default 256
	ReadOnlyRootfs  bool          // then /tmp and /workspace are tmpfs
	SeccompProfile  string        // "" = Docker's default; "unconfined"; or a JSON profile file
	Pull            string        // "missing" (default) or "never"
	PullTimeout     time.Duration // default 2 minutes
	User            string        // container user; "" = the image's (root for our images)
}

// Pull policies.
const (
	PullMissing = "missing"
	PullNever   = "never"
)

// Provider runs sandboxes as Docker containers. It is safe for concurrent use;
// no lock is held across engine calls.
type Provider struct {
	cfg     Config
	log     *slog.Logger
	cli     *client.Client
	seccomp string // value for "seccomp=" ("" = engine default)

	mu     sync.Mutex
	agents map[string]*agent.Client // by sandbox id
}

// New validates cfg, fills defaults and returns a Provider. It does not
// contact the engine (Health does); the client negotiates the API version on
// its first call.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Provider, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	seccomp, err := seccompOpt(cfg.SeccompProfile)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "sb"), 0o700); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "create docker data dir")
	}
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	} else {
		// The one documented exception to "only config reads the
		// environment": Docker's own DOCKER_HOST/DOCKER_TLS_* conventions.
		opts = append(opts, client.FromEnv)
	}
	cli, err := client.New(opts...)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "docker client for host %q", cfg.Host)
	}
	return &Provider{
		cfg:     cfg,
		log:     log.With("provider", cfg.Name),
		cli:     cli,
		seccomp: seccomp,
		agents:  map[string]*agent.Client{},
	}, nil
}

func withDefaults(cfg Config) (Config, error) {
	if cfg.Name == "" {
		cfg.Name = "docker"
	}
	if cfg.DefaultNetwork == "" {
		cfg.DefaultNetwork = provider.NetworkNone
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
	if cfg.Pull == "" {
		cfg.Pull = PullMissing
	}
	if cfg.PullTimeout == 0 {
		cfg.PullTimeout = 2 * time.Minute
	}
	switch {
	case cfg.ServerID == "":
		return cfg, errs.New(errs.Invalid, "docker provider: server id is required")
	case !filepath.IsAbs(cfg.DataDir):
		return cfg, errs.New(errs.Invalid, "docker provider: data dir %q must be an absolute path", cfg.DataDir)
	case !filepath.IsAbs(cfg.AgentPath):
		return cfg, errs.New(errs.Invalid, "docker provider: agent path %q must be an absolute path", cfg.AgentPath)
	case cfg.DefaultNetwork != provider.NetworkNone && cfg.DefaultNetwork != provider.NetworkBridge:
		return cfg, errs.New(errs.Invalid, "docker provider: default network %q is not none or bridge", cfg.DefaultNetwork)
	case cfg.DefaultMemoryMB < 0 || cfg.DefaultCPUs < 0 || cfg.PidsLimit < 0:
		return cfg, errs.New(errs.Invalid, "docker provider: negative resource default")
	case cfg.Pull != PullMissing && cfg.Pull != PullNever:
		return cfg, errs.New(errs.Invalid, "docker provider: pull policy %q is not missing or never", cfg.Pull)
	}
	cfg.DataDir = filepath.Clean(cfg.DataDir)
	longest := socketPath(cfg.DataDir, "sb-"+fmt.Sprintf("%0*d", MaxSandboxIDLen-3, 0))
	if len(longest) > maxSocketPath {
		return cfg, errs.New(errs.Invalid,
			"docker provider: data dir %q is too long for unix sockets (%d bytes for the longest socket path, max %d); use a shorter data dir",
			cfg.DataDir, len(longest), maxSocketPath)
	}
	if fi, err := os.Stat(cfg.AgentPath); err != nil || !fi.Mode().IsRegular() {
		return cfg, errs.New(errs.Invalid, "docker provider: agent binary %q is missing or not a regular file", cfg.AgentPath)
	}
	return cfg, nil
}

func seccompOpt(profile string) (string, error) {
	switch profile {
	case "":
		return "", nil
	case "unconfined":
		return "unconfined", nil
	}
	// The engine API takes the profile's JSON, not a path (the CLI reads it).
	b, err := os.ReadFile(profile)
	if err != nil {
		return "", errs.Wrap(errs.Invalid, err, "docker provider: read seccomp profile %q", profile)
	}
	return string(b), nil
}

// Close releases the engine client's connections.
func (p *Provider) Close() error {
	p.mu.Lock()
	for id, c := range p.agents {
		c.Close()
		delete(p.agents, id)
	}
	p.mu.Unlock()
	return p.cli.Close()
}

// Name returns the configured provider name.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities reports the isolation kind implied by the OCI runtime.
func (p *Provider) Capabilities() provider.Capabilities {
	iso := provider.IsolationContainer
	switch p.cfg.Runtime {
	case "runsc":
		iso = provider.IsolationUserspace
	case "kata", "kata-runtime", "io.containerd.kata.v2":
		iso = provider.IsolationVM
	}
	return provider.Capabilities{
		Isolation:    iso,
		NetworkModes: []string{provider.NetworkNone, provider.NetworkBridge},
		Features:     []string{"exec", "files", "stats", "logs"},
		Boundary:     true,
	}
}

// Health pings the engine, checks the configured runtime is registered and
// the agent binary is present.
func (p *Provider) Health(ctx context.Context) error {
	if _, err := p.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return classify(ctx, err, "docker engine unreachable")
	}
	runtime := p.cfg.Runtime
	if runtime == "" {
		runtime = "runc"
	}
	info, err := p.cli.Info(ctx, client.InfoOptions{})
	if err != nil {
		return classify(ctx, err, "docker engine info")
	}
	if _, ok := info.Info.Runtimes[runtime]; !ok {
		return errs.New(errs.Unavailable, "docker runtime %q is not registered with the engine", runtime)
	}
	if fi, err := os.Stat(p.cfg.AgentPath); err != nil || !fi.Mode().IsRegular() {
		return errs.New(errs.Unavailable, "agent binary %q is missing", p.cfg.AgentPath)
	}
	return nil
}

// sandboxDir is the host directory of one sandbox.
func (p *Provider) sandboxDir(id string) string { return filepath.Join(p.cfg.DataDir, "sb", id) }

func socketPath(dataDir, id string) string {
	return filepath.Join(dataDir, "sb", id, socketName)
}

func containerName(id string) string { return "stacyvm-" + id }

// validID accepts ids that are safe as a path element and a container name.
func validID(id string) error {
	if id == "" || len(id) > MaxSandboxIDLen {
		return errs.New(errs.Invalid, "sandbox id must be 1 to %d characters", MaxSandboxIDLen)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_' || r == '.'))
		if !ok {
			return errs.New(errs.Invalid, "sandbox id %q has characters outside [A-Za-z0-9_.-]", id)
		}
	}
	return nil
}

var (
	_ provider.Provider      = (*Provider)(nil)
	_ provider.StatsReporter = (*Provider)(nil)
	_ provider.LogReader     = (*Provider)(nil)
)
