package app

import (
	"context"

	"github.com/stacyvm/stacyvm/internal/certify"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/docker"
	"github.com/stacyvm/stacyvm/internal/provider/e2b"
	"github.com/stacyvm/stacyvm/internal/provider/mock"
	"github.com/stacyvm/stacyvm/internal/provider/proot"
	"github.com/stacyvm/stacyvm/internal/provider/vm"
)

// RuntimeHostChecks returns the host checks of one certifiable runtime
// (docker, gvisor, kata, vm, firecracker, proot) as configured in cfg. The
// first check is the runtime's presence; an absent runtime is NOT
// INSTALLED, never PASS.
func RuntimeHostChecks(ctx context.Context, cfg *config.Config, runtime string) []provider.HostCheck {
	pc := cfg.Providers
	switch runtime {
	case "docker":
		return docker.HostChecks(ctx, dockerFlavourConfig("docker", pc.Docker, cfg.DataDir, "", ""))
	case "gvisor":
		return docker.HostChecks(ctx, docker.GVisor(dockerFlavourConfig("gvisor", pc.Gvisor, cfg.DataDir, "", "")))
	case "kata":
		return docker.HostChecks(ctx, docker.Kata(dockerFlavourConfig("kata", pc.Kata, cfg.DataDir, "", "")))
	case "proot":
		return proot.HostChecks(ctx, proot.Config{Binary: pc.Proot.Binary, DockerHost: pc.Docker.Host})
	case "vm":
		vc := pc.VM
		return vm.HostChecks(ctx, vm.Config{
			QEMUBinary: vc.QEMUBinary, AssetsDir: vc.AssetsDir, Kernel: vc.Kernel, InitrdBase: vc.Initrd,
			Accel: vc.Accel, DockerHost: pc.Docker.Host,
		})
	case "firecracker":
		return vm.HostChecks(ctx, vm.Config{Backend: "firecracker"})
	}
	return []provider.HostCheck{{Name: runtime, Status: provider.CheckFail, Detail: "unknown runtime"}}
}

// SupportMatrix lists every provider compiled into this binary with its
// declared capabilities and support tier, for docs/support-matrix.md.
func SupportMatrix() []certify.MatrixEntry {
	kata := docker.DeclaredCapabilities(docker.Kata(docker.Config{}))
	return []certify.MatrixEntry{
		{Name: "docker", Runtime: "Docker Engine, runc", Tier: certify.TierSupported,
			Caps:  docker.DeclaredCapabilities(docker.Config{Runtime: "runc"}),
			Notes: "hardened HostConfig: cap-drop ALL, no-new-privileges, seccomp, pids/memory/cpu limits"},
		{Name: "gvisor", Runtime: "Docker Engine, runsc (gVisor)", Tier: certify.TierSupported,
			Caps:  docker.DeclaredCapabilities(docker.GVisor(docker.Config{})),
			Notes: "runsc registered with --network=host (host kernel stack inside the container's own netns); pids limit counts gVisor's host threads (min 64, default 2048)"},
		{Name: "kata", Runtime: "Docker Engine, Kata Containers (io.containerd.kata.v2)", Tier: certify.TierHostCertified,
			Caps: kata, Notes: "needs KVM and Docker >= 23; at least 128 MB per sandbox; not installable on Debian bookworm"},
		{Name: "vm", Runtime: "QEMU microvm (KVM when usable, else TCG)", Tier: certify.TierSupported,
			Caps:  (&vm.Provider{}).Capabilities(),
			Notes: "conformance in CI under TCG emulation (seconds per boot); docs/vm.md"},
		{Name: "vm (firecracker backend)", Runtime: "Firecracker", Tier: certify.TierNotYet,
			Caps:  (&vm.Provider{}).Capabilities(),
			Notes: "Firecracker API client and jailer flags implemented and unit-tested; the vm provider does not drive it yet (backend: firecracker is refused); needs KVM; see docs/vm.md"},
		{Name: "custom", Runtime: "a remote `stacyvm worker` (or any server of docs/worker-protocol.md) over HTTP(S)", Tier: certify.TierSupported,
			Caps:  customCaps(),
			Notes: "conformance suite in CI through a real stacyvm worker on loopback serving docker; isolation, features and limits are the worker provider's (shown: docker); token + TLS/mTLS"},
		{Name: "e2b", Runtime: "E2B (e2b.dev) Firecracker microVMs, through E2B's public API", Tier: certify.TierPreview,
			Caps:  e2b.DeclaredCapabilities(),
			Notes: "conformance suite passes against e2bfake (a local fake of E2B's published API on Docker), never against e2b.dev from CI; template fixes image and limits; docs/providers.md#e2b-preview"},
		{Name: "proot", Runtime: "PRoot (ptrace path translation)", Tier: certify.TierExperimental,
			Caps:  proot.DeclaredCapabilities(true),
			Notes: "NOT an isolation boundary: host kernel, host network, host /proc; limits need writable cgroup v1"},
		{Name: "mock", Runtime: "host processes", Tier: certify.TierExperimental,
			Caps: (&mock.Provider{}).Capabilities(), Notes: "tests only; refused in production"},
	}
}

// customCaps are the custom provider's capabilities with a worker serving
// docker (the worker's default): the remote provider reports whatever its
// worker's provider declares.
func customCaps() provider.Capabilities {
	c := docker.DeclaredCapabilities(docker.Config{Runtime: "runc"})
	c.Isolation = "the worker's (docker: container)"
	return c
}
