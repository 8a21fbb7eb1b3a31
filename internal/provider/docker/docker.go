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
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/dockerhost"
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

	// The fields below let one engine serve several isolation flavours
	// (docker/runc, gvisor/runsc, kata); see GVisor and Kata.

	// Isolation overrides the isolation kind advertised in Capabilities;
	// "" derives it from Runtime.
	Isolation string
	// NetworkModes lists the network modes this runtime really provides;
	// nil = none and bridge. A spec asking for another is Invalid.
	NetworkModes []string
	// MinMemoryMB and MinPidsLimit reject specs below what the runtime can
	// start with (a VM's guest kernel, gVisor's host threads); 0 = 6 MB / 0.
	MinMemoryMB  int
	MinPidsLimit int64
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

	rtCheck runtimeCheck

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
	cli, err := dockerhost.NewClient(cfg.Host)
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
	if cfg.NetworkModes == nil {
		cfg.NetworkModes = []string{provider.NetworkNone, provider.NetworkBridge}
	}
	if cfg.MinMemoryMB < 6 {
		cfg.MinMemoryMB = 6
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
	case !slices.Contains(cfg.NetworkModes, cfg.DefaultNetwork):
		return cfg, errs.New(errs.Invalid, "%s provider: default network %q is not one this runtime supports (%s)",
			cfg.Name, cfg.DefaultNetwork, strings.Join(cfg.NetworkModes, ", "))
	case cfg.DefaultMemoryMB < cfg.MinMemoryMB:
		return cfg, errs.New(errs.Invalid, "%s provider: default memory %d MB is below the runtime's minimum of %d MB",
			cfg.Name, cfg.DefaultMemoryMB, cfg.MinMemoryMB)
	case cfg.PidsLimit < cfg.MinPidsLimit:
		return cfg, errs.New(errs.Invalid, "%s provider: pids limit %d is below the runtime's minimum of %d",
			cfg.Name, cfg.PidsLimit, cfg.MinPidsLimit)
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

// Capabilities reports the isolation kind (configured, else implied by the
// OCI runtime) and the network modes the runtime provides.
func (p *Provider) Capabilities() provider.Capabilities { return DeclaredCapabilities(p.cfg) }

// DeclaredCapabilities is what a provider built from cfg advertises; it
// depends on the config only, never on the host (support matrix, docs).
func DeclaredCapabilities(cfg Config) provider.Capabilities {
	iso := cfg.Isolation
	if iso == "" {
		iso = isolationOf(cfg.Runtime)
	}
	modes := cfg.NetworkModes
	if modes == nil {
		modes = []string{provider.NetworkNone, provider.NetworkBridge}
	}
	return provider.Capabilities{
		Isolation:    iso,
		NetworkModes: slices.Clone(modes),
		Features:     []string{"exec", "files", "stats", "logs"},
		Boundary:     true,
	}
}

// Health pings the engine, checks the configured runtime is registered (or
// its shim installed) and the agent binary is present.
func (p *Provider) Health(ctx context.Context) error {
	if _, err := p.cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return classify(ctx, err, "docker engine unreachable")
	}
	if err := p.checkRuntime(ctx); err != nil {
		return err
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
func validID(id string) error { return provider.ValidSandboxID(id, MaxSandboxIDLen) }

var (
	_ provider.Provider      = (*Provider)(nil)
	_ provider.StatsReporter = (*Provider)(nil)
	_ provider.LogReader     = (*Provider)(nil)
)
