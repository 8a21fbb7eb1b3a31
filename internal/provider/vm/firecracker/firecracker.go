package firecracker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stacyvm/stacyvm/internal/provider/vm/vmm"
)

// DefaultBinary is the Firecracker executable looked up on PATH.
const DefaultBinary = "firecracker"

// AgentPort is the guest vsock port the agent listens on.
const AgentPort = 1024

// guestCID is the guest's vsock context id (any value >= 3; each VM has its
// own vsock device, so all may use the same).
const guestCID = 3

// Jailer runs Firecracker under the jailer: a chroot, a uid/gid, cgroups
// and a new PID namespace. Paths in the Spec must then be inside
// ChrootBase/firecracker/<id>/root (the jailer's chroot).
type Jailer struct {
	Binary     string // "jailer" on PATH when empty
	UID, GID   int
	ChrootBase string // --chroot-base-dir
	CgroupV2   bool   // --cgroup-version 2
	NewPIDNS   bool   // --new-pid-ns
}

// Args returns the jailer's command line for machine id, exec'ing
// firecracker with fcArgs (the API socket path is relative to the chroot).
func (j Jailer) Args(id, firecracker string, fcArgs []string) []string {
	a := []string{"--id", id, "--exec-file", firecracker,
		"--uid", strconv.Itoa(j.UID), "--gid", strconv.Itoa(j.GID),
		"--chroot-base-dir", j.ChrootBase}
	if j.CgroupV2 {
		a = append(a, "--cgroup-version", "2")
	}
	if j.NewPIDNS {
		a = append(a, "--new-pid-ns")
	}
	return append(append(a, "--"), fcArgs...)
}

// VMM runs Firecracker microVMs. Firecracker needs KVM: there is no
// emulated fallback.
type VMM struct {
	binary string
	jailer *Jailer

	mu       sync.Mutex
	children map[int]chan struct{}
}

// New returns a Firecracker VMM (binary "" = firecracker on PATH); jailer
// nil runs Firecracker directly.
func New(binary string, jailer *Jailer) *VMM {
	if binary == "" {
		binary = DefaultBinary
	}
	return &VMM{binary: binary, jailer: jailer, children: map[int]chan struct{}{}}
}

// Name is "firecracker".
func (v *VMM) Name() string { return "firecracker" }

func apiSocket(dir string) string   { return filepath.Join(dir, "firecracker.sock") }
func vsockSocket(dir string) string { return filepath.Join(dir, "vsock.sock") }

// Configure sends the boot configuration of spec to a fresh Firecracker
// process and starts the instance.
func Configure(ctx context.Context, c *Client, spec vmm.Spec) error {
	if spec.Accel != "" && spec.Accel != vmm.AccelKVM {
		return fmt.Errorf("firecracker needs KVM; accelerator %q is not available", spec.Accel)
	}
	if spec.DiskFormat != "" && spec.DiskFormat != "raw" {
		return fmt.Errorf("firecracker takes raw disks only, not %s", spec.DiskFormat)
	}
	if spec.Network != "" && spec.Network != vmm.NetworkNone {
		return fmt.Errorf("firecracker networking needs a tap device; network %q is not supported yet", spec.Network)
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"boot source", func() error {
			return c.PutBootSource(ctx, BootSource{KernelImagePath: spec.Kernel, InitrdPath: spec.Initrd, BootArgs: spec.Cmdline})
		}},
		{"root drive", func() error {
			return c.PutDrive(ctx, Drive{DriveID: "rootfs", PathOnHost: spec.RootDisk, IsRootDevice: false, IsReadOnly: false})
		}},
		{"machine config", func() error {
			return c.PutMachineConfig(ctx, MachineConfig{VCPUCount: max(spec.VCPUs, 1), MemSizeMiB: max(spec.MemoryMB, 128)})
		}},
		{"vsock", func() error { return c.PutVsock(ctx, Vsock{GuestCID: guestCID, UDSPath: vsockSocket(spec.Dir)}) }},
		{"start", func() error { return c.Action(ctx, "InstanceStart") }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

// Boot starts Firecracker (under the jailer when configured), waits for
// its API socket, configures the machine and starts it.
func (v *VMM) Boot(ctx context.Context, spec vmm.Spec) (m vmm.Machine, err error) {
	if _, err := exec.LookPath(v.binary); err != nil {
		return m, fmt.Errorf("firecracker is not installed: %w", err)
	}
	sock := apiSocket(spec.Dir)
	fcArgs := []string{"--api-sock", sock, "--id", spec.ID}
	bin, args := v.binary, fcArgs
	if v.jailer != nil {
		bin = v.jailer.Binary
		if bin == "" {
			bin = "jailer"
		}
		args = v.jailer.Args(spec.ID, v.binary, fcArgs)
	}
	console, err := os.OpenFile(spec.ConsoleLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return m, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = console, console // the guest's serial console is Firecracker's stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	console.Close()
	if err != nil {
		return m, err
	}
	pid := cmd.Process.Pid
	done := make(chan struct{})
	v.mu.Lock()
	v.children[pid] = done
	v.mu.Unlock()
	go func() { // owned by the child: reaps it
		cmd.Wait()
		close(done)
		v.mu.Lock()
		delete(v.children, pid)
		v.mu.Unlock()
	}()
	defer func() {
		if err != nil {
			cmd.Process.Kill()
			<-done
		}
	}()
	m = vmm.Machine{Backend: v.Name(), PID: pid, ControlSocket: sock, AgentSocket: vsockSocket(spec.Dir)}
	c := NewClient(sock)
	for {
		if _, derr := c.Describe(ctx); derr == nil {
			break
		}
		select {
		case <-done:
			return m, errors.New("firecracker exited at start (see the console log)")
		case <-ctx.Done():
			return m, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return m, Configure(ctx, c, spec)
}

// Stop kills the Firecracker process (the disk is discarded anyway).
func (v *VMM) Stop(ctx context.Context, m vmm.Machine) error {
	if err := vmm.KillAndWait(ctx, m.PID, m.ControlSocket); err != nil {
		return err
	}
	v.mu.Lock()
	done := v.children[m.PID]
	v.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return nil
}

// Alive reports whether m's Firecracker process runs.
func (v *VMM) Alive(m vmm.Machine) bool { return vmm.ProcessAlive(m.PID, m.ControlSocket) }

// DialAgent opens a new stream to the guest agent's vsock port through
// Firecracker's host socket: "CONNECT <port>\n", answered "OK <hostport>\n".
func (v *VMM) DialAgent(ctx context.Context, m vmm.Machine) (net.Conn, error) {
	return DialVsock(ctx, m.AgentSocket, AgentPort)
}

// DialVsock performs Firecracker's host-initiated vsock handshake.
func DialVsock(ctx context.Context, udsPath string, port uint32) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", udsPath)
	if err != nil {
		return nil, err
	}
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(5 * time.Second)
	}
	c.SetDeadline(dl)
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		c.Close()
		return nil, err
	}
	// Read the answer byte by byte: what follows it is the stream's data.
	var line []byte
	b := make([]byte, 1)
	for len(line) < 64 {
		if _, err := c.Read(b); err != nil {
			c.Close()
			return nil, fmt.Errorf("vsock handshake: %w", err)
		}
		if b[0] == '\n' {
			break
		}
		line = append(line, b[0])
	}
	if !strings.HasPrefix(string(line), "OK ") {
		c.Close()
		return nil, fmt.Errorf("vsock handshake: guest port %d answered %q", port, string(line))
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

// Wait returns once m's process has exited.
func (v *VMM) Wait(ctx context.Context, m vmm.Machine) error {
	v.mu.Lock()
	done := v.children[m.PID]
	v.mu.Unlock()
	if done != nil {
		select {
		case <-done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return vmm.WaitGone(ctx, m.PID, m.ControlSocket)
}

// Version runs `firecracker --version`.
func Version(ctx context.Context, binary string) (string, error) {
	if binary == "" {
		binary = DefaultBinary
	}
	out, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Scan()
	return strings.TrimSpace(sc.Text()), nil
}

var _ vmm.VMM = (*VMM)(nil)
