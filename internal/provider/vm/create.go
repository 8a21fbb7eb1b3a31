package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
	"github.com/stacyvm/stacyvm/internal/provider/vm/qemu"
	"github.com/stacyvm/stacyvm/internal/provider/vm/vmm"
)

// state is run/<id>/state.json, so a new Provider on the same DataDir (a
// restarted server) can list, inspect, reach and destroy the VM.
type state struct {
	SandboxID string            `json:"sandbox_id"`
	ServerID  string            `json:"server_id"`
	Machine   vmm.Machine       `json:"machine"`
	Accel     string            `json:"accel"`
	Image     string            `json:"image"`
	ImageID   string            `json:"image_id"`
	Disk      string            `json:"disk"`
	Initrd    string            `json:"initrd"`
	Console   string            `json:"console"`
	MemoryMB  int               `json:"memory_mb"`
	VCPUs     int               `json:"vcpus"`
	Network   string            `json:"network"`
	StartedAt time.Time         `json:"started_at"`
	Labels    map[string]string `json:"labels,omitempty"`
}

// maxVCPUs and maxMemoryMB bound a Spec.
const (
	maxVCPUs    = 32
	maxMemoryMB = 64 << 10
	minMemoryMB = 128
)

// Create converts the image (cached), makes the sandbox's directory with a
// copy-on-write disk over the image's root disk and an initramfs carrying
// the agent and the sandbox's config, boots the VM and returns once the
// agent answers through its channel. On any failure every resource is
// released: the VMM process, its sockets, the disk, the directory.
func (p *Provider) Create(ctx context.Context, spec provider.Spec) (h provider.Handle, err error) {
	if err := validID(spec.SandboxID); err != nil {
		return h, err
	}
	network := vmm.NetworkNone
	switch spec.Network {
	case "", provider.NetworkNone:
	case provider.NetworkBridge:
		network = vmm.NetworkUser
	default:
		return h, errs.New(errs.Invalid, "network %q is not none or bridge", spec.Network)
	}
	mem := spec.MemoryMB
	if mem == 0 {
		mem = p.cfg.DefaultMemoryMB
	}
	if mem < minMemoryMB || mem > maxMemoryMB {
		return h, errs.New(errs.Invalid, "memory_mb %d is outside %d..%d for a VM", mem, minMemoryMB, maxMemoryMB)
	}
	cpus := int(math.Ceil(spec.VCPUs))
	if spec.VCPUs == 0 {
		cpus = p.cfg.DefaultVCPUs
	}
	if spec.VCPUs < 0 || cpus > maxVCPUs {
		return h, errs.New(errs.Invalid, "vcpus %v is outside 0..%d", spec.VCPUs, maxVCPUs)
	}
	if spec.PidsLimit < 0 {
		return h, errs.New(errs.Invalid, "pids_limit %d is negative", spec.PidsLimit)
	}
	env, err := guestEnv(spec.Env)
	if err != nil {
		return h, err
	}
	if err := p.Health(ctx); err != nil {
		return h, err
	}
	img, err := p.images.Get(ctx, spec.Image, func(f string, a ...any) { p.log.Info("vm image: "+f, a...) })
	if err != nil {
		return h, err
	}
	cached, err := p.agentInitrd()
	if err != nil {
		return h, err
	}
	accel, _ := p.Accel(ctx)

	dir := p.dir(spec.SandboxID)
	if err := hostproc.MkdirSandbox(dir, spec.SandboxID); err != nil {
		return h, err
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	undo = append(undo, func() { os.RemoveAll(dir) })

	disk := filepath.Join(dir, "disk.qcow2")
	if err := overlay(ctx, img.Rootfs, disk); err != nil {
		return h, err
	}
	cfgJSON, _ := json.Marshal(agent.GuestConfig{
		Hostname: spec.SandboxID,
		Env:      mergeEnv(img.Env, env),
		Listen:   "virtio-serial://" + qemu.AgentPortName,
		Workdir:  "/workspace",
		Network:  network,
		// The VM's memory and vCPUs bound the rest; processes are capped
		// inside the guest.
		PidsLimit: spec.PidsLimit,
	})
	initrd := filepath.Join(dir, "initrd.img")
	if err := sandboxInitrd(initrd, cached, cfgJSON); err != nil {
		return h, errs.Wrap(errs.Internal, err, "write sandbox initramfs")
	}
	console := filepath.Join(dir, "console.log")

	bctx, cancel := context.WithTimeout(ctx, p.cfg.BootTimeout)
	defer cancel()
	start := time.Now()
	m, err := p.vmm.Boot(bctx, vmm.Spec{
		ID: spec.SandboxID, Dir: dir, Kernel: p.cfg.Kernel, Initrd: initrd, Cmdline: p.cmdline,
		RootDisk: disk, DiskFormat: "qcow2", MemoryMB: mem, VCPUs: cpus, Accel: accel,
		Network: network, ConsoleLog: console,
	})
	if err != nil {
		return h, errs.Wrap(errs.Unavailable, err, "boot VM")
	}
	undo = append(undo, func() {
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer scancel()
		p.vmm.Stop(sctx, m)
	})
	st := state{
		SandboxID: spec.SandboxID, ServerID: p.cfg.ServerID, Machine: m, Accel: accel,
		Image: spec.Image, ImageID: img.ID, Disk: disk, Initrd: initrd, Console: console,
		MemoryMB: mem, VCPUs: cpus, Network: spec.Network, StartedAt: time.Now().UTC(), Labels: spec.Labels,
	}
	// Recorded before the agent answers, so a crash here leaves a VM that
	// reconcile finds and removes.
	if err := writeState(dir, st); err != nil {
		return h, errs.Wrap(errs.Internal, err, "write vm state")
	}
	ch, err := openChannel(bctx, p.vmm, m, dir)
	if err != nil {
		if !p.vmm.Alive(m) {
			return h, errs.New(errs.Unavailable, "VM of %s stopped during boot: %s", spec.SandboxID, bootFailure(console))
		}
		return h, errs.Wrap(errs.Unavailable, err, "VM of %s booted but its agent did not answer within %v", spec.SandboxID, p.cfg.BootTimeout)
	}
	undo = append(undo, ch.close)
	ac := agent.NewClient(p.dialer(spec.SandboxID))
	p.mu.Lock()
	p.channels[spec.SandboxID] = ch
	p.mu.Unlock()
	undo = append(undo, func() { p.dropChannel(spec.SandboxID) })
	if _, err := ac.Ping(bctx); err != nil {
		return h, errs.Wrap(errs.Unavailable, err, "agent of %s", spec.SandboxID)
	}
	p.mu.Lock()
	p.clients[spec.SandboxID] = ac
	p.mu.Unlock()
	p.log.Info("vm sandbox ready", "sandbox_id", spec.SandboxID, "pid", m.PID, "accel", accel,
		"boot_to_agent_ms", time.Since(start).Milliseconds(), "image", spec.Image)
	return p.handle(st), nil
}

// overlay makes disk a qcow2 copy-on-write layer over the image's raw
// root disk: creating it costs a few KiB whatever the image's size.
func overlay(ctx context.Context, backing, disk string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", backing, disk)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		if _, lerr := exec.LookPath("qemu-img"); lerr != nil {
			return errs.New(errs.Unavailable, "qemu-img is missing: install qemu-utils (scripts/ci-prepare.sh)")
		}
		return errs.Wrap(errs.Internal, err, "create disk overlay: %s", strings.TrimSpace(out.String()))
	}
	return nil
}

// guestEnv validates the spec's environment.
func guestEnv(spec map[string]string) (map[string]string, error) {
	for k, v := range spec {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.Contains(v, "\x00") {
			return nil, errs.New(errs.Invalid, "invalid environment variable %q", k)
		}
	}
	return spec, nil
}

// mergeEnv is the guest's whole environment: defaults, then the image's,
// then the spec's (later wins), sorted.
func mergeEnv(image []string, spec map[string]string) []string {
	env := map[string]string{"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
	for _, kv := range image {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			env[k] = v
		}
	}
	maps.Copy(env, spec)
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

// agentInitrd returns the cached base+agent initramfs, building it once.
func (p *Provider) agentInitrd() (string, error) {
	p.initrdMu.Lock()
	defer p.initrdMu.Unlock()
	if p.initrd != "" {
		if _, err := os.Stat(p.initrd); err == nil {
			return p.initrd, nil
		}
	}
	path, err := agentInitrd(filepath.Join(p.cfg.DataDir, "initrd"), p.cfg.InitrdBase, p.cfg.AgentPath)
	if err != nil {
		return "", errs.Wrap(errs.Unavailable, err, "build the agent initramfs")
	}
	p.initrd = path
	return path, nil
}

func writeState(dir string, st state) error {
	return hostproc.WriteState(filepath.Join(dir, "state.json"), st)
}

// Owner names the server and sandbox the state belongs to.
func (st state) Owner() (serverID, sandboxID string) { return st.ServerID, st.SandboxID }

func (p *Provider) readState(id string) (state, error) {
	var st state
	err := hostproc.ReadState(filepath.Join(p.dir(id), "state.json"), &st, "vm state for "+id)
	return st, err
}

// handle is the persisted handle: the VMM's pid, sockets and the disk.
func (p *Provider) handle(st state) provider.Handle {
	m := st.Machine
	return provider.Handle{
		Provider:  p.cfg.Name,
		SandboxID: st.SandboxID,
		RuntimeID: m.Backend + "-" + itoa(m.PID),
		Data: map[string]string{
			"backend":        m.Backend,
			"pid":            itoa(m.PID),
			"control_socket": m.ControlSocket,
			"channel_socket": m.AgentSocket,
			"agent_socket":   proxyPath(p.dir(st.SandboxID)),
			"disk":           st.Disk,
			"initrd":         st.Initrd,
			"console":        st.Console,
			"accel":          st.Accel,
		},
	}
}

// bootFailure picks the console lines that say why a guest died (a kernel
// panic, our init's complaints), else the last lines.
func bootFailure(console string) string {
	lines := hostproc.TailLines(console, 200)
	var why []string
	for _, l := range lines {
		if strings.Contains(l, "Kernel panic") || strings.Contains(l, "stacyvm-init:") || strings.Contains(l, "stacyvm-agent") {
			why = append(why, strings.TrimSpace(l))
		}
	}
	if len(why) == 0 && len(lines) > 0 {
		why = lines[max(0, len(lines)-3):]
	}
	if len(why) == 0 {
		return "no console output"
	}
	return strings.Join(why, " | ")
}
