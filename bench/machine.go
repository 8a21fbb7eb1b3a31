package bench

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// Machine describes where a run happened.
type Machine struct {
	CPU           string `json:"cpu"`
	Cores         int    `json:"cores"`
	MemoryMB      int64  `json:"memory_mb"`
	Kernel        string `json:"kernel"`
	DockerVersion string `json:"docker_version"`
	GoVersion     string `json:"go_version"`
	Commit        string `json:"commit"`
	Date          string `json:"date"`
}

// machineInfo gathers CPU, memory, kernel, Docker, Go and git facts; what
// cannot be read is left as "unknown".
func machineInfo(ctx context.Context) Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Kernel: "unknown", DockerVersion: "unknown",
		GoVersion: runtime.Version(), Commit: "unknown", Date: time.Now().UTC().Format(time.RFC3339)}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				var kb int64
				for _, c := range f[1] {
					kb = kb*10 + int64(c-'0')
				}
				m.MemoryMB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := dockerCmd(ctx, nil, "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"); err == nil {
		m.DockerVersion = strings.TrimSpace(out)
	}
	m.Commit = gitCommit(ctx)
	return m
}

// gitCommit is the short HEAD commit, with "-dirty" when the tree has
// changes; "unknown" outside a git checkout.
func gitCommit(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		c += "-dirty"
	}
	return c
}
