package docker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/provider"
)

// HostChecks reports the host preconditions of cfg's flavour (docker,
// gvisor or kata): the runtime's binary, the engine, the runtime's
// registration, and flavour specifics (gVisor's network mode on new
// kernels, /dev/kvm for Kata). It never fails itself: an absent runtime is
// CheckNotInstalled, never CheckPass.
func HostChecks(ctx context.Context, cfg Config) []provider.HostCheck {
	runtime := cfg.Runtime
	if runtime == "" {
		runtime = "runc"
	}
	var out []provider.HostCheck
	add := func(name, status, detail, remedy string) {
		out = append(out, provider.HostCheck{Name: name, Status: status, Detail: detail, Remedy: remedy})
	}
	// 1. The runtime's own binary (runc ships with the engine).
	bin := runtimeBinary(runtime)
	if bin != "" {
		path, err := exec.LookPath(bin)
		if err != nil {
			add(bin+" binary", provider.CheckNotInstalled, bin+" not found on PATH", installRemedy(runtime))
			add("runtime "+runtime+" registered", provider.CheckNotInstalled, "runtime not installed", "")
			return out
		}
		add(bin+" binary", provider.CheckPass, path+versionOf(ctx, path), "")
	}
	// 2. The engine.
	var opts []client.Opt
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	} else {
		opts = append(opts, client.FromEnv)
	}
	cli, err := client.New(opts...)
	if err != nil {
		add("docker engine", provider.CheckFail, "bad engine address: "+err.Error(), "")
		return out
	}
	defer cli.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	info, err := cli.Info(cctx, client.InfoOptions{})
	if err != nil {
		status := provider.CheckFail
		if _, lerr := exec.LookPath("dockerd"); lerr != nil && cfg.Host == "" {
			status = provider.CheckNotInstalled
		}
		add("docker engine", status, shortReason(err), "scripts/ci-prepare.sh (installs docker.io and starts dockerd)")
		return out
	}
	add("docker engine", provider.CheckPass, fmt.Sprintf("Docker %s, cgroup driver %s, cgroup v%s",
		info.Info.ServerVersion, info.Info.CgroupDriver, info.Info.CgroupVersion), "")

	// 3. Registration.
	name := "runtime " + runtime + " registered"
	if isShimV2(runtime) {
		major, _ := strconv.Atoi(strings.SplitN(info.Info.ServerVersion, ".", 2)[0])
		if major > 0 && major < 23 {
			add(name, provider.CheckFail, fmt.Sprintf("Docker %s cannot select containerd shim v2 runtimes by name (needs 23 or later)", info.Info.ServerVersion),
				"upgrade the engine, or register kata-runtime in /etc/docker/daemon.json")
		} else {
			add(name, provider.CheckPass, "shim v2 runtime, passed to containerd by name", "")
		}
	} else if rt, ok := info.Info.Runtimes[runtime]; !ok {
		add(name, provider.CheckFail, "not in the engine's runtimes ("+runtimeNames(info.Info.Runtimes)+")",
			"scripts/ci-prepare.sh (registers it in /etc/docker/daemon.json and reloads dockerd with SIGHUP)")
	} else {
		add(name, provider.CheckPass, strings.TrimSpace(rt.Path+" "+strings.Join(rt.Args, " ")), "")
		if isolationOf(runtime) == provider.IsolationUserspace {
			out = append(out, gvisorNetworkCheck(rt.Args))
		}
	}
	// 4. Flavour specifics.
	if isolationOf(runtime) == provider.IsolationVM {
		out = append(out, kvmCheck())
	}
	return out
}

// runtimeBinary is the host binary a runtime needs ("" = part of the engine).
func runtimeBinary(runtime string) string {
	switch {
	case runtime == "runc" || runtime == "io.containerd.runc.v2":
		return ""
	case isShimV2(runtime):
		return shimBinary(runtime)
	case runtime == RuntimeGVisor || strings.HasPrefix(runtime, "runsc"):
		return "runsc"
	case runtime == RuntimeKataLegacy:
		return "kata-runtime"
	}
	return ""
}

func installRemedy(runtime string) string {
	switch {
	case strings.HasPrefix(runtime, "runsc"):
		return "apt-get install runsc && scripts/ci-prepare.sh"
	case strings.Contains(runtime, "kata"):
		return "install Kata Containers (not packaged in Debian bookworm): https://github.com/kata-containers/kata-containers/tree/main/docs/install"
	}
	return ""
}

// gvisorNetworkCheck flags a runsc entry that uses gVisor's own network
// stack on kernels where the runsc we ship cannot start it (gVisor issue
// 10704: kernels 6.11 and later), and the kvm platform, which hangs on
// nested-virtualisation hosts.
func gvisorNetworkCheck(args []string) provider.HostCheck {
	c := provider.HostCheck{Name: "runsc network and platform", Status: provider.CheckPass}
	network, platform := "sandbox", "ptrace"
	for _, a := range args {
		a = strings.TrimLeft(a, "-")
		if v, ok := strings.CutPrefix(a, "network="); ok {
			network = v
		}
		if v, ok := strings.CutPrefix(a, "platform="); ok {
			platform = v
		}
	}
	c.Detail = "network=" + network + ", platform=" + platform
	if platform == "kvm" {
		c.Status = provider.CheckFail
		c.Detail += ": the kvm platform hangs on nested (PVM) KVM hosts; use ptrace or systrap"
		c.Remedy = "scripts/ci-prepare.sh"
		return c
	}
	if network == "sandbox" && kernelAtLeast(6, 11) {
		c.Status = provider.CheckFail
		c.Detail += ": gVisor's netstack fails on kernels >= 6.11 with this runsc (google/gvisor#10704)"
		c.Remedy = "register runsc with --network=host (scripts/ci-prepare.sh)"
	}
	return c
}

func kvmCheck() provider.HostCheck {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return provider.HostCheck{Name: "/dev/kvm usable", Status: provider.CheckFail, Detail: err.Error(),
			Remedy: "Kata needs hardware virtualisation: run on a KVM-capable host"}
	}
	f.Close()
	return provider.HostCheck{Name: "/dev/kvm usable", Status: provider.CheckPass, Detail: "opened read-write"}
}

// kernelAtLeast compares the running kernel's release with major.minor.
func kernelAtLeast(major, minor int) bool {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return false
	}
	parts := strings.SplitN(strings.TrimSpace(string(b)), ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, _ := strconv.Atoi(parts[0])
	mi, _ := strconv.Atoi(strings.TrimFunc(parts[1], func(r rune) bool { return r < '0' || r > '9' }))
	return ma > major || ma == major && mi >= minor
}

func runtimeNames[V any](m map[string]V) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// versionOf runs "<bin> --version" (bounded) and returns ", <first line>".
func versionOf(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return ", " + line
}
