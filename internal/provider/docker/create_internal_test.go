package docker

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/moby/moby/api/types/container"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

func TestContainerConfig_HardenedByDefault(t *testing.T) {
	p := &Provider{cfg: Config{
		Name: "docker", DataDir: "/data", AgentPath: "/opt/agent", ServerID: "srv", DefaultNetwork: "none",
		DefaultMemoryMB: 512, DefaultCPUs: 1, PidsLimit: 256, Runtime: "runc",
	}}
	cfg, hc, err := p.containerConfig(provider.Spec{
		SandboxID: "sb-1", Image: "img", MemoryMB: 64, Env: map[string]string{"B": "2", "A": "1"},
		Labels: map[string]string{"x": "y", provider.LabelServer: "spoofed"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"A=1", "B=2"}, cfg.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	wantLabels := map[string]string{"x": "y", provider.LabelManaged: "true", provider.LabelSandbox: "sb-1", provider.LabelServer: "srv", labelProvider: "docker"}
	if diff := cmp.Diff(wantLabels, cfg.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{agentInContainer, "--listen", "unix:///.stacyvm/run/agent.sock", "--workdir", "/workspace"}, cfg.Entrypoint); diff != "" {
		t.Errorf("entrypoint (-want +got):\n%s", diff)
	}
	pids := int64(256)
	want := container.Resources{Memory: 64 << 20, MemorySwap: 64 << 20, NanoCPUs: 1e9, PidsLimit: &pids}
	if diff := cmp.Diff(want, hc.Resources); diff != "" {
		t.Errorf("resources (-want +got):\n%s", diff)
	}
	if !cmp.Equal(hc.CapDrop, []string{"ALL"}) || !cmp.Equal(hc.SecurityOpt, []string{"no-new-privileges:true"}) ||
		hc.NetworkMode != "none" || hc.Privileged || hc.AutoRemove || !hc.RestartPolicy.IsNone() || hc.Runtime != "runc" {
		t.Errorf("host config not hardened: %+v", hc)
	}
	if len(hc.Mounts) != 2 || !hc.Mounts[0].ReadOnly || hc.Mounts[0].Source != "/opt/agent" || hc.Mounts[1].Source != "/data/sb/sb-1" {
		t.Errorf("mounts = %+v", hc.Mounts)
	}
}

func TestContainerConfig_RejectsBadSpecs(t *testing.T) {
	p := &Provider{cfg: Config{DataDir: "/d", DefaultNetwork: "none", DefaultMemoryMB: 512, DefaultCPUs: 1, PidsLimit: 1}}
	for name, sp := range map[string]provider.Spec{
		"HostNetwork": {SandboxID: "sb-1", Network: "host"},
		"TinyMemory":  {SandboxID: "sb-1", MemoryMB: 1},
		"BadEnvKey":   {SandboxID: "sb-1", Env: map[string]string{"A=B": "x"}},
	} {
		if _, _, err := p.containerConfig(sp); errs.ClassOf(err) != errs.Invalid {
			t.Errorf("%s: err = %v, want Invalid", name, err)
		}
	}
	for _, id := range []string{"", "../x", "-a", "a/b", "sb-" + string(make([]byte, 50))} {
		if err := validID(id); errs.ClassOf(err) != errs.Invalid {
			t.Errorf("validID(%q) = %v, want Invalid", id, err)
		}
	}
}
