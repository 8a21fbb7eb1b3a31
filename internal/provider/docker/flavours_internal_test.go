package docker

import (
	"context"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

func flavour(t *testing.T, cfg Config) *Provider {
	t.Helper()
	cfg.DataDir, cfg.AgentPath, cfg.ServerID = "/data", "/opt/agent", "srv"
	if cfg.DefaultNetwork == "" {
		cfg.DefaultNetwork = provider.NetworkNone
	}
	if cfg.DefaultMemoryMB == 0 {
		cfg.DefaultMemoryMB = 512
	}
	cfg.DefaultCPUs = 1
	if cfg.NetworkModes == nil {
		cfg.NetworkModes = []string{provider.NetworkNone, provider.NetworkBridge}
	}
	if cfg.PidsLimit == 0 {
		cfg.PidsLimit = 256
	}
	return &Provider{cfg: cfg}
}

// TestKata_RequestShape: a kata sandbox is the same hardened container
// request with Kata's shim v2 runtime name, and advertises microvm.
func TestKata_RequestShape(t *testing.T) {
	p := flavour(t, Kata(Config{}))
	if p.Name() != "kata" {
		t.Errorf("name = %q, want kata", p.Name())
	}
	cfg, hc, err := p.containerConfig(provider.Spec{SandboxID: "sb-1", Image: "img", MemoryMB: 256, Network: provider.NetworkBridge})
	if err != nil {
		t.Fatal(err)
	}
	if hc.Runtime != "io.containerd.kata.v2" {
		t.Errorf("HostConfig.Runtime = %q, want io.containerd.kata.v2", hc.Runtime)
	}
	if hc.Resources.Memory != 256<<20 || hc.Resources.MemorySwap != 256<<20 || hc.NetworkMode != "bridge" {
		t.Errorf("resources/network = %+v, %s", hc.Resources, hc.NetworkMode)
	}
	if !slices.Equal(hc.CapDrop, []string{"ALL"}) || !slices.Contains(hc.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("kata request lost the hardening: cap drop %v, security opt %v", hc.CapDrop, hc.SecurityOpt)
	}
	if cfg.Entrypoint[0] != agentInContainer || len(hc.Mounts) != 2 {
		t.Errorf("entrypoint %v, mounts %+v: want the agent as PID 1 with its two bind mounts", cfg.Entrypoint, hc.Mounts)
	}
	caps := p.Capabilities()
	if caps.Isolation != provider.IsolationVM || !caps.Boundary {
		t.Errorf("kata capabilities = %+v, want microvm and a boundary", caps)
	}
	// Kata 1.x users register "kata-runtime" in daemon.json instead.
	legacy := flavour(t, Kata(Config{Runtime: RuntimeKataLegacy}))
	if _, hc, _ := legacy.containerConfig(provider.Spec{SandboxID: "sb-2", Image: "img"}); hc.Runtime != "kata-runtime" {
		t.Errorf("legacy HostConfig.Runtime = %q, want kata-runtime", hc.Runtime)
	}
}

// TestFlavours_Minimums: each flavour refuses specs below what its runtime
// can start with, naming the minimum.
func TestFlavours_Minimums(t *testing.T) {
	kata := flavour(t, Kata(Config{}))
	if _, _, err := kata.containerConfig(provider.Spec{SandboxID: "sb-1", Image: "img", MemoryMB: 64}); errs.ClassOf(err) != errs.Invalid || !strings.Contains(err.Error(), "128 MB") {
		t.Errorf("kata with 64 MB: %v, want Invalid naming 128 MB", err)
	}
	gv := flavour(t, GVisor(Config{}))
	if _, _, err := gv.containerConfig(provider.Spec{SandboxID: "sb-1", Image: "img", PidsLimit: 32}); errs.ClassOf(err) != errs.Invalid || !strings.Contains(err.Error(), "64") {
		t.Errorf("gvisor with pids 32: %v, want Invalid naming 64", err)
	}
	if _, hc, err := gv.containerConfig(provider.Spec{SandboxID: "sb-1", Image: "img"}); err != nil || hc.Runtime != "runsc" || *hc.Resources.PidsLimit != 2048 {
		t.Errorf("gvisor default request: %v, runtime %q, pids %v; want runsc with 2048", err, hc.Runtime, hc.Resources.PidsLimit)
	}
	if got := gv.Capabilities(); got.Isolation != provider.IsolationUserspace {
		t.Errorf("gvisor isolation = %q, want userspace", got.Isolation)
	}
	if _, err := withDefaults(Kata(Config{DataDir: "/d", AgentPath: "/bin/sh", ServerID: "s", DefaultMemoryMB: 64})); errs.ClassOf(err) != errs.Invalid {
		t.Errorf("kata config with default memory 64: %v, want Invalid", err)
	}
}

// TestFlavours_NetworkModesAreEnforced: a flavour declaring fewer modes
// refuses the others with a message listing what it supports.
func TestFlavours_NetworkModesAreEnforced(t *testing.T) {
	p := flavour(t, GVisor(Config{NetworkModes: []string{provider.NetworkNone}}))
	_, _, err := p.containerConfig(provider.Spec{SandboxID: "sb-1", Image: "img", Network: provider.NetworkBridge})
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(err.Error(), "supported: none") {
		t.Errorf("bridge on a none-only flavour: %v, want Invalid listing the supported modes", err)
	}
	if got := p.Capabilities().NetworkModes; !slices.Equal(got, []string{provider.NetworkNone}) {
		t.Errorf("capabilities network modes = %v, want [none]", got)
	}
}

// TestKata_HostChecksReportNotInstalled: on a host without Kata the checks
// say NOT INSTALLED, never PASS, and the shim name is derived correctly.
func TestKata_HostChecksReportNotInstalled(t *testing.T) {
	if got := shimBinary(RuntimeKata); got != "containerd-shim-kata-v2" {
		t.Errorf("shimBinary = %q", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	checks := HostChecks(ctx, Kata(Config{}))
	if len(checks) == 0 {
		t.Fatal("no checks")
	}
	if _, err := exec.LookPath("containerd-shim-kata-v2"); err == nil {
		t.Skip("Kata is installed on this host")
	}
	if checks[0].Status != provider.CheckNotInstalled || !strings.Contains(checks[0].Detail, "containerd-shim-kata-v2") {
		t.Errorf("first kata check = %+v, want NOT INSTALLED naming the shim", checks[0])
	}
	for _, c := range checks {
		if c.Status == provider.CheckPass {
			t.Errorf("kata check %+v passed on a host without Kata", c)
		}
	}
}

func TestGVisorNetworkCheck(t *testing.T) {
	if c := gvisorNetworkCheck([]string{"--network=host", "--host-uds=create"}); c.Status != provider.CheckPass {
		t.Errorf("host network entry: %+v, want PASS", c)
	}
	if c := gvisorNetworkCheck([]string{"--platform=kvm", "--network=host"}); c.Status != provider.CheckFail {
		t.Errorf("kvm platform entry: %+v, want FAIL", c)
	}
	if kernelAtLeast(6, 11) {
		if c := gvisorNetworkCheck(nil); c.Status != provider.CheckFail {
			t.Errorf("netstack entry on kernel >= 6.11: %+v, want FAIL", c)
		}
	}
}
