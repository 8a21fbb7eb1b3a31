package certify

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Facts describe the host a report was made on.
type Facts struct {
	Hostname    string            `json:"hostname"`
	Kernel      string            `json:"kernel"`
	OS          string            `json:"os"`
	Arch        string            `json:"arch"`
	CPUs        int               `json:"cpus"`
	MemoryMB    int64             `json:"memory_mb"`
	KVM         string            `json:"kvm"`
	CgroupMode  string            `json:"cgroup_mode"`
	Versions    map[string]string `json:"versions"`
	LoadAverage string            `json:"load_average,omitempty"`
}

// HostFacts reads the kernel, OS, CPU, memory, /dev/kvm, the cgroup mode
// and the versions of the runtimes' binaries (absent ones are "not found").
func HostFacts(ctx context.Context) Facts {
	f := Facts{Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Versions: map[string]string{}}
	f.Hostname, _ = os.Hostname()
	f.Kernel = readTrim("/proc/sys/kernel/osrelease")
	f.OS = osRelease()
	f.MemoryMB = memTotalMB()
	if la := strings.Fields(readTrim("/proc/loadavg")); len(la) >= 3 {
		f.LoadAverage = strings.Join(la[:3], " ")
	}
	switch fd, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); {
	case err == nil:
		fd.Close()
		f.KVM = "present, opens read-write"
	case os.IsNotExist(err):
		f.KVM = "absent"
	default:
		f.KVM = "present, not usable: " + err.Error()
	}
	switch _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); {
	case err == nil:
		f.CgroupMode = "v2 (unified)"
	default:
		if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
			f.CgroupMode = "v1 + v2 (hybrid)"
		} else {
			f.CgroupMode = "v1"
		}
	}
	for name, argv := range map[string][]string{
		"docker":             {"docker", "version", "--format", "{{.Server.Version}}"},
		"runsc":              {"runsc", "--version"},
		"proot":              {"proot", "--version"},
		"qemu-system-x86_64": {"qemu-system-x86_64", "--version"},
		"firecracker":        {"firecracker", "--version"},
		"kata-runtime":       {"kata-runtime", "--version"},
		"go":                 {"go", "env", "GOVERSION"},
	} {
		f.Versions[name] = version(ctx, argv)
	}
	return f
}

func version(ctx context.Context, argv []string) string {
	if _, err := exec.LookPath(argv[0]); err != nil {
		return "not found"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "error: " + err.Error()
	}
	// proot prints a banner; its version is the last word of the line
	// that ends in a dotted number.
	for _, l := range strings.Split(string(out), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if fs := strings.Fields(l); argv[0] == "proot" {
			if last := fs[len(fs)-1]; strings.Count(last, ".") == 2 && last[0] >= '0' && last[0] <= '9' {
				return last
			}
			continue
		}
		return l
	}
	return "unknown"
}

func readTrim(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func osRelease() string {
	f, err := os.Open("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

func memTotalMB() int64 {
	for _, l := range strings.Split(readTrim("/proc/meminfo"), "\n") {
		if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb / 1024
		}
	}
	return 0
}
