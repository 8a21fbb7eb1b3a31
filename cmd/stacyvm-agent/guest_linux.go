package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"unsafe"

	"github.com/stacyvm/stacyvm/internal/agent"
)

// guestFlag makes PID 1 a microVM's init: `agent --guest CONFIG.json`.
const guestFlag = "--guest"

// runGuest is PID 1 of a microVM (the initramfs switched root to the
// sandbox's disk and exec'd us): it mounts the kernel file systems a
// container runtime would provide, sets the hostname, loopback and
// environment from the host's config, then runs init as in a container.
// When the server child exits the VM powers off (PID 1 must never exit:
// that is a kernel panic).
func runGuest(argv0, cfgPath string) int {
	code := guest(argv0, cfgPath)
	fmt.Fprintf(os.Stderr, "stacyvm-agent: guest init ending (code %d); powering off\n", code)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	return code
}

func guest(argv0, cfgPath string) int {
	b, err := os.ReadFile(cfgPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stacyvm-agent guest:", err)
		return 1
	}
	var cfg agent.GuestConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "stacyvm-agent guest: bad config:", err)
		return 1
	}
	mountGuestFS()
	if err := limitPids(cfg.PidsLimit); err != nil {
		fmt.Fprintln(os.Stderr, "stacyvm-agent guest: pids limit:", err)
		return 1 // a sandbox must not run without the limit it was given
	}
	if cfg.Hostname != "" {
		if err := syscall.Sethostname([]byte(cfg.Hostname)); err != nil {
			fmt.Fprintln(os.Stderr, "stacyvm-agent guest: sethostname:", err)
		}
	}
	if err := loopbackUp(); err != nil {
		fmt.Fprintln(os.Stderr, "stacyvm-agent guest: loopback:", err)
	}
	os.Clearenv()
	for _, kv := range cfg.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			os.Setenv(k, v)
		}
	}
	args := []string{argv0, "--listen", cfg.Listen}
	if cfg.Workdir != "" {
		args = append(args, "--workdir", cfg.Workdir)
	}
	if cfg.LogLevel != "" {
		args = append(args, "--log-level", cfg.LogLevel)
	}
	if err := os.Chdir("/"); err != nil {
		fmt.Fprintln(os.Stderr, "stacyvm-agent guest:", err)
	}
	return runInit(args)
}

// mountGuestFS mounts what a sandbox expects; a failure is logged, not
// fatal (an image may lack a mount point on a read-only path).
func mountGuestFS() {
	type m struct {
		src, dst, fstype string
		flags            uintptr
		data             string
		mode             os.FileMode
	}
	const nosuid, nodev, noexec = syscall.MS_NOSUID, syscall.MS_NODEV, syscall.MS_NOEXEC
	mounts := []m{
		{"proc", "/proc", "proc", nosuid | nodev | noexec, "", 0o555},
		{"sysfs", "/sys", "sysfs", nosuid | nodev | noexec, "", 0o555},
		{"devtmpfs", "/dev", "devtmpfs", nosuid, "mode=0755", 0o755},
		{"devpts", "/dev/pts", "devpts", nosuid | noexec, "newinstance,ptmxmode=0666,mode=0620", 0o755},
		{"shm", "/dev/shm", "tmpfs", nosuid | nodev, "mode=1777", 0o1777},
		{"tmpfs", "/tmp", "tmpfs", nosuid | nodev, "mode=1777", 0o1777},
		{"tmpfs", "/run", "tmpfs", nosuid | nodev, "mode=0755", 0o755},
	}
	for _, x := range mounts {
		if x.dst == "/dev" && isMountPoint("/dev") {
			continue // moved here by the initramfs
		}
		if err := os.MkdirAll(x.dst, x.mode); err != nil {
			fmt.Fprintf(os.Stderr, "stacyvm-agent guest: mkdir %s: %v\n", x.dst, err)
			continue
		}
		if err := syscall.Mount(x.src, x.dst, x.fstype, x.flags, x.data); err != nil {
			fmt.Fprintf(os.Stderr, "stacyvm-agent guest: mount %s: %v\n", x.dst, err)
		}
	}
	for link, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0",
		"/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2", "/dev/ptmx": "pts/ptmx"} {
		if _, err := os.Lstat(link); err != nil {
			os.Symlink(target, link)
		}
	}
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var a, b syscall.Stat_t
	if syscall.Stat(dir, &a) != nil || syscall.Stat(dir+"/..", &b) != nil {
		return false
	}
	return a.Dev != b.Dev
}

// loopbackUp sets the lo interface up (SIOCSIFFLAGS), so servers in the
// sandbox can listen on 127.0.0.1 even with no network device.
func loopbackUp() error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	var req struct {
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:], "lo")
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCGIFFLAGS, uintptr(unsafe.Pointer(&req))); e != 0 {
		return e
	}
	req.flags |= syscall.IFF_UP | syscall.IFF_RUNNING
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.SIOCSIFFLAGS, uintptr(unsafe.Pointer(&req))); e != 0 {
		return e
	}
	return nil
}

// limitPids puts PID 1, and so everything the sandbox starts, into the
// cgroup v2 group /sys/fs/cgroup/sandbox with pids.max = n (n <= 0: no
// limit, no group).
func limitPids(n int64) error {
	if n <= 0 {
		return nil
	}
	const root = "/sys/fs/cgroup"
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	if !isMountPoint(root) {
		if err := syscall.Mount("cgroup2", root, "cgroup2", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mount cgroup2: %w", err)
		}
	}
	if err := os.WriteFile(root+"/cgroup.subtree_control", []byte("+pids"), 0o644); err != nil {
		return fmt.Errorf("enable the pids controller: %w", err)
	}
	dir := root + "/sandbox"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(dir+"/pids.max", []byte(fmt.Sprint(n)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(dir+"/cgroup.procs", []byte(fmt.Sprint(os.Getpid())), 0o644)
}
