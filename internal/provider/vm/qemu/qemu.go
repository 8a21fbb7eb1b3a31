// Package qemu is the QEMU backend of the VMM layer: `qemu-system-x86_64 -M
// microvm` with a PVH vmlinux, the root disk on virtio-blk, the agent
// channel on a virtio-serial port backed by a unix socket, the serial
// console in a file, and QMP on a unix socket for status and quit.
package qemu

import (
	"bytes"
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

// AgentPortName is the virtio-serial port name the guest agent opens
// (through /sys/class/virtio-ports, there is no udev in the guest).
const AgentPortName = "stacyvm.agent"

// DefaultBinary is Debian's QEMU for x86-64 guests.
const DefaultBinary = "qemu-system-x86_64"

// VMM runs QEMU microVMs. Safe for concurrent use.
type VMM struct {
	binary string

	mu       sync.Mutex
	children map[int]chan struct{} // processes this instance started, closed once reaped
}

// New returns a QEMU VMM using binary ("" = DefaultBinary on PATH).
func New(binary string) *VMM {
	if binary == "" {
		binary = DefaultBinary
	}
	return &VMM{binary: binary, children: map[int]chan struct{}{}}
}

// Name is "qemu".
func (v *VMM) Name() string { return "qemu" }

// Binary is the QEMU executable this VMM runs.
func (v *VMM) Binary() string { return v.binary }

// Socket paths inside a machine's directory.
func qmpSocket(dir string) string   { return filepath.Join(dir, "qmp.sock") }
func agentSocket(dir string) string { return filepath.Join(dir, "channel.sock") }

// Args returns QEMU's command line for spec (without the binary).
func Args(spec vmm.Spec) ([]string, error) {
	if spec.Kernel == "" || spec.Initrd == "" || spec.RootDisk == "" || spec.Dir == "" {
		return nil, errors.New("qemu: kernel, initrd, root disk and dir are required")
	}
	format := spec.DiskFormat
	if format == "" {
		format = "raw"
	}
	mem, cpus := max(spec.MemoryMB, 64), max(spec.VCPUs, 1)
	a := []string{
		"-name", "stacyvm-" + spec.ID,
		// microvm: no PCI, no firmware tables beyond ACPI; the PIT, PIC
		// and RTC are needed by the Debian kernel to calibrate its clock
		// under emulation.
		"-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=on,pic=on",
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		// QEMU's seccomp filter: a guest that breaks into QEMU still
		// cannot exec, change privileges or use obsolete system calls.
		"-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
		"-chardev", "file,id=console,append=on,path=" + spec.ConsoleLog,
		"-serial", "chardev:console",
		"-qmp", "unix:" + qmpSocket(spec.Dir) + ",server=on,wait=off",
		"-kernel", spec.Kernel, "-initrd", spec.Initrd, "-append", spec.Cmdline,
		"-drive", "id=root,file=" + spec.RootDisk + ",format=" + format + ",if=none,cache=unsafe,discard=unmap",
		"-device", "virtio-blk-device,drive=root",
		"-chardev", "socket,id=agent,path=" + agentSocket(spec.Dir) + ",server=on,wait=off",
		"-device", "virtio-serial-device,max_ports=2",
		"-device", "virtserialport,chardev=agent,name=" + AgentPortName,
	}
	switch spec.Accel {
	case vmm.AccelKVM:
		// arch-capabilities: nested hosts refuse MSR 0x10a.
		a = append(a, "-accel", "kvm", "-cpu", "host,-arch-capabilities")
	case vmm.AccelTCG, "":
		a = append(a, "-accel", "tcg", "-cpu", "max")
	default:
		return nil, fmt.Errorf("qemu: unknown accelerator %q", spec.Accel)
	}
	switch spec.Network {
	case vmm.NetworkNone, "":
	case vmm.NetworkUser:
		a = append(a, "-netdev", "user,id=net0", "-device", "virtio-net-device,netdev=net0")
	default:
		return nil, fmt.Errorf("qemu: unknown network %q", spec.Network)
	}
	return a, nil
}

// Cmdline returns the guest kernel command line for a host whose TSC runs
// at tscKHz. tsc_early_khz and tsc=reliable spare the kernel a clock
// calibration that stalls under emulation (microvm has no HPET or PM timer
// to calibrate against); the value must be the host's real TSC rate, since
// an emulated guest reads the host's TSC: a wrong one makes the guest's
// clock run fast or slow. panic=-1 with -no-reboot makes a dead guest a dead
// QEMU.
func Cmdline(tscKHz int) string {
	if tscKHz <= 0 {
		tscKHz = 2000000
	}
	return "console=ttyS0 quiet panic=-1 reboot=t tsc_early_khz=" + strconv.Itoa(tscKHz) + " tsc=reliable"
}

// HostTSCKHz estimates the host's TSC rate from /proc/cpuinfo ("cpu MHz"
// of the first CPU; constant on hosts with an invariant TSC, which every
// virtualised x86 host exposes), or 0 when unknown.
func HostTSCKHz() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "cpu MHz" {
			mhz, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || mhz <= 0 {
				return 0
			}
			return int(mhz * 1000)
		}
	}
	return 0
}

// Boot starts QEMU in its own session (it outlives a server restart) and
// waits until QMP reports the machine running.
func (v *VMM) Boot(ctx context.Context, spec vmm.Spec) (m vmm.Machine, err error) {
	args, err := Args(spec)
	if err != nil {
		return m, err
	}
	logPath := filepath.Join(spec.Dir, "qemu.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return m, err
	}
	cmd := exec.Command(v.binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return m, fmt.Errorf("start %s: %w", v.binary, err)
	}
	done := make(chan struct{})
	pid := cmd.Process.Pid
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
	m = vmm.Machine{Backend: v.Name(), PID: pid, ControlSocket: qmpSocket(spec.Dir), AgentSocket: agentSocket(spec.Dir), AgentMux: true}
	defer func() {
		if err != nil {
			cmd.Process.Kill()
			<-done
		}
	}()
	for {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, qerr := Status(sctx, m.ControlSocket)
		cancel()
		if qerr == nil && st == "running" {
			return m, nil
		}
		select {
		case <-done:
			return m, fmt.Errorf("qemu exited at start: %s", tail(logPath))
		case <-ctx.Done():
			return m, fmt.Errorf("qemu did not come up: %w (last: %v)", ctx.Err(), qerr)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// tail returns the last lines of QEMU's own log, for errors.
func tail(path string) string {
	b, _ := os.ReadFile(path)
	b = bytes.TrimSpace(b)
	if len(b) > 600 {
		b = b[len(b)-600:]
	}
	if len(b) == 0 {
		return "no output"
	}
	return strings.ReplaceAll(string(b), "\n", " | ")
}

// Stop asks QEMU to quit over QMP and kills it if it has not gone within a
// moment (the disk is discarded anyway, so nothing is lost).
func (v *VMM) Stop(ctx context.Context, m vmm.Machine) error {
	if !v.Alive(m) {
		v.reap(ctx, m.PID)
		return nil
	}
	qctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, qerr := qmp(qctx, m.ControlSocket, "quit", nil)
	cancel()
	if qerr == nil {
		gctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		vmm.WaitGone(gctx, m.PID, m.ControlSocket)
		cancel()
	}
	if err := vmm.KillAndWait(ctx, m.PID, m.ControlSocket); err != nil {
		return err
	}
	v.reap(ctx, m.PID)
	return nil
}

// reap waits for the reaper goroutine of a child of ours (so no zombie is
// left); a no-op for machines started by another process.
func (v *VMM) reap(ctx context.Context, pid int) {
	v.mu.Lock()
	done := v.children[pid]
	v.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
}

// Alive reports whether m's QEMU process runs.
func (v *VMM) Alive(m vmm.Machine) bool { return vmm.ProcessAlive(m.PID, m.ControlSocket) }

// DialAgent connects to the virtio-serial port's host socket. QEMU serves
// one client at a time: a second connection waits until the first closes.
func (v *VMM) DialAgent(ctx context.Context, m vmm.Machine) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, "unix", m.AgentSocket)
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

var _ vmm.VMM = (*VMM)(nil)
