package proot

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/provider"
)

// HostChecks reports proot's host preconditions: the binary (NOT INSTALLED
// when absent), that ptrace works (proot runs /bin/true), the Docker
// engine images are exported from, and whether cgroup v1 can enforce
// limits (NOT INSTALLED when it cannot: sandboxes then run unlimited).
func HostChecks(ctx context.Context, cfg Config) []provider.HostCheck {
	bin := cfg.Binary
	if bin == "" {
		bin = "proot"
	}
	var out []provider.HostCheck
	add := func(name, status, detail, remedy string) {
		out = append(out, provider.HostCheck{Name: name, Status: status, Detail: detail, Remedy: remedy})
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		add("proot binary", provider.CheckNotInstalled, bin+" not found on PATH", "apt-get install proot")
		return out
	}
	add("proot binary", provider.CheckPass, path+prootVersion(ctx, path), "")

	tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if b, err := exec.CommandContext(tctx, path, "-r", "/", "/bin/true").CombinedOutput(); err != nil {
		add("ptrace usable", provider.CheckFail, strings.TrimSpace(err.Error()+": "+firstLine(string(b))),
			"proot needs ptrace: allow it (seccomp, kernel.yama.ptrace_scope) for this user")
	} else {
		add("ptrace usable", provider.CheckPass, "proot ran /bin/true", "")
	}

	var opts []client.Opt
	if cfg.DockerHost != "" {
		opts = append(opts, client.WithHost(cfg.DockerHost))
	} else {
		opts = append(opts, client.FromEnv)
	}
	if cli, err := client.New(opts...); err != nil {
		add("docker engine (image export)", provider.CheckFail, err.Error(), "")
	} else {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cli.Ping(dctx, client.PingOptions{NegotiateAPIVersion: true})
		dcancel()
		cli.Close()
		if err != nil {
			add("docker engine (image export)", provider.CheckFail, firstLine(err.Error()),
				"proot sandboxes are made from local Docker images: start dockerd (scripts/ci-prepare.sh)")
		} else {
			add("docker engine (image export)", provider.CheckPass, "reachable", "")
		}
	}

	if g := probeCgroups("stacyvm-proot"); g != nil {
		add("cgroup v1 limits", provider.CheckPass, "memory, cpu and pids groups writable: limits enforced, destroy kills by cgroup", "")
	} else {
		add("cgroup v1 limits", provider.CheckNotInstalled, "cgroup v1 memory/cpu/pids not writable: no resource limits, destroy kills by session",
			"run as root on a host with cgroup v1 hierarchies mounted")
	}
	if _, err := os.Stat(cfg.AgentPath); cfg.AgentPath != "" && err != nil {
		add("agent binary", provider.CheckFail, cfg.AgentPath+" is missing", "make build")
	}
	return out
}

// prootVersion returns ", proot 5.1.0" from proot's banner (its version
// is the last word of the banner's fourth line).
func prootVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	b, _ := exec.CommandContext(ctx, bin, "--version").CombinedOutput()
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.Count(f[len(f)-1], ".") == 2 && f[len(f)-1][0] >= '0' && f[len(f)-1][0] <= '9' {
			return ", proot " + f[len(f)-1]
		}
	}
	return ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
