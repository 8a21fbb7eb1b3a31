// Package vm is the microVM provider: each sandbox is a virtual machine
// booted by a VMM backend (QEMU's microvm machine here; see package vmm)
// from a Debian kernel, an initramfs that carries the agent, and a
// copy-on-write overlay of an ext4 root disk converted from a local Docker
// image. The agent is the guest's PID 1 and is reached over a multiplexed
// virtio-serial channel. Hardware virtualisation (KVM) is used when it
// works; otherwise QEMU emulates the CPU (TCG): slower, still a VM boundary.
package vm

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/dockerhost"
	"github.com/stacyvm/stacyvm/internal/provider/vm/qemu"
	"github.com/stacyvm/stacyvm/internal/provider/vm/vmm"
)

// Accelerator choices for Config.Accel.
const (
	AccelAuto = "auto" // KVM when /dev/kvm works and a probe boot is fast, else TCG
	AccelKVM  = vmm.AccelKVM
	AccelTCG  = vmm.AccelTCG
)

// DefaultAssetsDir is where scripts/build-vm-assets.sh puts the kernel and
// the base initramfs.
const DefaultAssetsDir = "/var/lib/stacyvm/vm-assets"

// Config configures the vm provider.
type Config struct {
	Name      string // provider name; default "vm"
	DataDir   string // absolute: run/<id>/, images/, initrd/ live here
	AgentPath string // absolute path of the static stacyvm-agent binary
	ServerID  string // owner recorded in each sandbox's state file; required
	// Backend is the VMM: "qemu" (default). "firecracker" is implemented
	// in package firecracker (and the agent listens on vsock), but this
	// provider does not drive it yet, so New refuses it.
	Backend    string
	QEMUBinary string // "" = qemu-system-x86_64 on PATH
	// AssetsDir holds vmlinux and initrd-base.img; Kernel and InitrdBase
	// override single files.
	AssetsDir  string
	Kernel     string
	InitrdBase string
	Accel      string // AccelAuto (default), AccelKVM or AccelTCG
	// KVMProbeTimeout bounds the probe boot of AccelAuto (default 3s).
	KVMProbeTimeout time.Duration
	DefaultMemoryMB int           // default 512
	DefaultVCPUs    int           // default 1
	BootTimeout     time.Duration // until the agent answers; default 90s
	// DockerHost is the engine images are converted from ("" = DOCKER_HOST
	// or the default socket).
	DockerHost string
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "vm"
	}
	if c.Backend == "" {
		c.Backend = "qemu"
	}
	if c.AssetsDir == "" {
		c.AssetsDir = DefaultAssetsDir
	}
	if c.Kernel == "" {
		c.Kernel = filepath.Join(c.AssetsDir, "vmlinux")
	}
	if c.InitrdBase == "" {
		c.InitrdBase = filepath.Join(c.AssetsDir, "initrd-base.img")
	}
	if c.Accel == "" {
		c.Accel = AccelAuto
	}
	if c.KVMProbeTimeout <= 0 {
		c.KVMProbeTimeout = 3 * time.Second
	}
	if c.DefaultMemoryMB <= 0 {
		c.DefaultMemoryMB = 512
	}
	if c.DefaultVCPUs <= 0 {
		c.DefaultVCPUs = 1
	}
	if c.BootTimeout <= 0 {
		c.BootTimeout = 90 * time.Second
	}
	if c.QEMUBinary == "" {
		c.QEMUBinary = qemu.DefaultBinary
	}
}

// maxIDLen keeps <DataDir>/run/<id>/channel.sock within a unix socket address.
const maxIDLen = 40

// Provider runs one microVM per sandbox. Safe for concurrent use.
type Provider struct {
	cfg    Config
	log    *slog.Logger
	vmm    vmm.VMM
	images *Images
	docker *client.Client

	accelMu  sync.Mutex
	accel    string // resolved accelerator, "" until the first Create
	accelWhy string

	initrdMu sync.Mutex
	initrd   string // cached base+agent initramfs

	cmdline string // guest kernel command line

	mu       sync.Mutex
	channels map[string]*channel      // agent channels this instance owns, by sandbox id
	clients  map[string]*agent.Client // by sandbox id
	opening  map[string]*sync.Mutex   // serialises channel takeover per sandbox
}

// New validates cfg and returns a Provider. It does not boot anything.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Provider, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg.setDefaults()
	switch {
	case cfg.ServerID == "":
		return nil, errs.New(errs.Invalid, "vm provider: server id is required")
	case !filepath.IsAbs(cfg.DataDir):
		return nil, errs.New(errs.Invalid, "vm provider: data dir %q must be absolute", cfg.DataDir)
	case !filepath.IsAbs(cfg.AgentPath):
		return nil, errs.New(errs.Invalid, "vm provider: agent path %q must be absolute", cfg.AgentPath)
	case cfg.Accel != AccelAuto && cfg.Accel != AccelKVM && cfg.Accel != AccelTCG:
		return nil, errs.New(errs.Invalid, "vm provider: accel %q is not auto, kvm or tcg", cfg.Accel)
	case cfg.Backend == "firecracker":
		return nil, errs.New(errs.Invalid, "vm provider: the firecracker backend is not supported yet: the provider does not drive it (raw disk copies, vsock dialing) and Debian's cloud kernel cannot discover its devices (docs/vm.md)")
	case cfg.Backend != "qemu":
		return nil, errs.New(errs.Invalid, "vm provider: unknown backend %q (want qemu)", cfg.Backend)
	}
	cfg.DataDir = filepath.Clean(cfg.DataDir)
	if n := len(filepath.Join(cfg.DataDir, "run", string(make([]byte, maxIDLen)), "channel.sock")); n > 107 {
		return nil, errs.New(errs.Invalid, "vm provider: data dir %q is too long for unix socket paths", cfg.DataDir)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "run"), 0o700); err != nil {
		return nil, errs.Wrap(errs.Internal, err, "create vm data dir")
	}
	cli, err := dockerhost.NewClient(cfg.DockerHost)
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "vm provider: docker engine address")
	}
	return &Provider{
		cfg:      cfg,
		log:      log.With("provider", cfg.Name),
		vmm:      qemu.New(cfg.QEMUBinary),
		images:   NewImages(filepath.Join(cfg.DataDir, "images"), cli),
		docker:   cli,
		channels: map[string]*channel{},
		clients:  map[string]*agent.Client{},
		opening:  map[string]*sync.Mutex{},
		cmdline:  qemu.Cmdline(qemu.HostTSCKHz()),
	}, nil
}

// Close releases agent clients and channels (the proxies of channels this
// instance owns stop; the VMs keep running) and the Docker client.
func (p *Provider) Close() error {
	p.mu.Lock()
	chs := p.channels
	p.channels = map[string]*channel{}
	for id, c := range p.clients {
		c.Close()
		delete(p.clients, id)
	}
	p.mu.Unlock()
	for _, ch := range chs {
		ch.close()
	}
	return p.docker.Close()
}

// Name returns the configured provider name.
func (p *Provider) Name() string { return p.cfg.Name }

// Capabilities: a hardware (or emulated) VM boundary; no network by
// default, user-mode NAT when bridge is asked for.
func (p *Provider) Capabilities() provider.Capabilities {
	return provider.Capabilities{
		Isolation:    provider.IsolationVM,
		NetworkModes: []string{provider.NetworkNone, provider.NetworkBridge},
		Features:     []string{"exec", "files", "stats", "logs"},
		Boundary:     true,
	}
}

// Health checks the VMM binary, the boot assets and the agent binary.
func (p *Provider) Health(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return errs.Wrap(errs.Unavailable, err, "request cancelled")
	}
	if _, err := exec.LookPath(p.cfg.QEMUBinary); err != nil {
		return errs.New(errs.Unavailable, "%s not found: install qemu-system-x86 (scripts/ci-prepare.sh)", p.cfg.QEMUBinary)
	}
	for _, f := range []string{p.cfg.Kernel, p.cfg.InitrdBase, p.cfg.AgentPath} {
		if fi, err := os.Stat(f); err != nil || !fi.Mode().IsRegular() {
			return errs.New(errs.Unavailable, "vm asset %s is missing: run scripts/build-vm-assets.sh", filepath.Base(f))
		}
	}
	return nil
}

// Accel returns the accelerator sandboxes boot with, deciding it on the
// first call (AccelAuto probes KVM once) and why.
func (p *Provider) Accel(ctx context.Context) (accel, why string) {
	p.accelMu.Lock()
	defer p.accelMu.Unlock()
	if p.accel != "" {
		return p.accel, p.accelWhy
	}
	switch p.cfg.Accel {
	case AccelKVM, AccelTCG:
		p.accel, p.accelWhy = p.cfg.Accel, "configured"
	default:
		d, err := qemu.ProbeKVM(ctx, p.cfg.QEMUBinary, p.cfg.Kernel, p.cfg.KVMProbeTimeout)
		if err != nil {
			p.accel, p.accelWhy = AccelTCG, "KVM not usable: "+err.Error()
		} else {
			p.accel, p.accelWhy = AccelKVM, "KVM probe booted the kernel in "+d.Round(time.Millisecond).String()
		}
	}
	p.log.Info("vm accelerator chosen", "accel", p.accel, "why", p.accelWhy)
	return p.accel, p.accelWhy
}

func (p *Provider) dir(id string) string { return filepath.Join(p.cfg.DataDir, "run", id) }

func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return errs.New(errs.Invalid, "sandbox id must be 1 to %d characters", maxIDLen)
	}
	for i, r := range id {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || (i > 0 && (r == '-' || r == '_'))
		if !ok {
			return errs.New(errs.Invalid, "sandbox id %q has characters outside [A-Za-z0-9_-]", id)
		}
	}
	return nil
}

var (
	_ provider.Provider  = (*Provider)(nil)
	_ provider.LogReader = (*Provider)(nil)
)
