// Package vmm is the virtual machine monitor layer of the vm provider: one
// small interface (boot, stop, dial the agent channel, wait) with a QEMU
// backend (package qemu) and a Firecracker backend (package firecracker).
// A backend only runs machines; images, disks, state files and the agent
// protocol belong to the provider.
package vmm

import (
	"bytes"
	"context"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Accelerators a Spec may ask for.
const (
	AccelKVM = "kvm" // hardware virtualisation through /dev/kvm
	AccelTCG = "tcg" // QEMU's software emulation (no Firecracker equivalent)
)

// Network modes of a machine.
const (
	NetworkNone = "none" // no network device at all
	NetworkUser = "user" // user-mode NAT (QEMU slirp): outbound only, no host-side setup
)

// Spec is one machine to boot. Paths are absolute.
type Spec struct {
	ID         string // sandbox id, for names and process titles
	Dir        string // per-machine directory: sockets and logs go here
	Kernel     string // an uncompressed vmlinux (PVH / Linux boot protocol)
	Initrd     string
	Cmdline    string
	RootDisk   string // the guest's /dev/vda
	DiskFormat string // "qcow2" or "raw"
	MemoryMB   int
	VCPUs      int
	Accel      string // AccelKVM or AccelTCG
	Network    string // NetworkNone or NetworkUser
	ConsoleLog string // the guest's serial console is appended here
}

// Machine is a running VMM process, serialisable so a restarted server finds
// it again.
type Machine struct {
	Backend       string `json:"backend"`
	PID           int    `json:"pid"`
	ControlSocket string `json:"control_socket"` // QMP or the Firecracker API
	AgentSocket   string `json:"agent_socket"`   // host end of the agent channel
	// AgentMux: the channel is one byte stream (virtio-serial) that the
	// caller multiplexes; otherwise every DialAgent is an independent
	// connection (vsock).
	AgentMux bool `json:"agent_mux"`
}

// VMM boots and controls machines of one backend. Every method is safe for
// concurrent use and takes a context that bounds it.
type VMM interface {
	// Name is the backend's name ("qemu", "firecracker").
	Name() string
	// Boot starts a machine and returns once the VMM answers on its
	// control socket (the guest may still be booting). On error nothing is
	// left running.
	Boot(ctx context.Context, spec Spec) (Machine, error)
	// Stop ends the machine (gracefully if quick, else killed) and returns
	// when its process is gone. Stopping a stopped machine returns nil.
	Stop(ctx context.Context, m Machine) error
	// Alive reports whether m's process still runs (and is still m: a
	// reused pid is not).
	Alive(m Machine) bool
	// DialAgent connects to the guest's agent channel.
	DialAgent(ctx context.Context, m Machine) (net.Conn, error)
	// Wait returns when m's process has exited or ctx is done.
	Wait(ctx context.Context, m Machine) error
}

// ProcessAlive reports whether pid runs (not a zombie) with an argument
// equal to mark in its command line, which tells our VMM from a process
// that reused its pid.
func ProcessAlive(pid int, mark string) bool {
	if pid <= 1 {
		return false
	}
	st, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(st, ')'); i < 0 || len(st) < i+3 || st[i+2] == 'Z' || st[i+2] == 'X' {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	for _, a := range strings.Split(string(b), "\x00") {
		if a == mark || strings.Contains(a, mark) {
			return true
		}
	}
	return false
}

// KillAndWait SIGKILLs pid if it is still the process marked by mark and
// waits (bounded by ctx) until it is gone.
func KillAndWait(ctx context.Context, pid int, mark string) error {
	if !ProcessAlive(pid, mark) {
		return nil
	}
	syscall.Kill(pid, syscall.SIGKILL)
	return WaitGone(ctx, pid, mark)
}

// WaitGone polls until the process is gone or ctx is done.
func WaitGone(ctx context.Context, pid int, mark string) error {
	for ProcessAlive(pid, mark) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}
