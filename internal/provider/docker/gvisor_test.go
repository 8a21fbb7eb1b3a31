package docker_test

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/docker"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
)

// requireGVisor skips (or, under CI=true, fails) unless runsc is installed
// and registered with the engine as docker.RuntimeGVisor.
func requireGVisor(t *testing.T) {
	t.Helper()
	requireDocker(t)
	miss := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf(format+" (CI=true: gVisor is required; run scripts/ci-prepare.sh)", args...)
		}
		t.Skipf(format+"; set CI=true to make this a failure", args...)
	}
	if _, err := exec.LookPath("runsc"); err != nil {
		miss("runsc is not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, c := range docker.HostChecks(ctx, docker.GVisor(docker.Config{})) {
		if c.Status != provider.CheckPass {
			miss("gVisor host check %q: %s %s", c.Name, c.Status, c.Detail)
		}
	}
}

func newGVisor(t *testing.T, cfg docker.Config) *docker.Provider {
	t.Helper()
	requireGVisor(t)
	return newProvider(t, docker.GVisor(cfg))
}

func TestGVisor_Conformance(t *testing.T) {
	dataDir := shortTempDir(t)
	p := newGVisor(t, docker.Config{DataDir: dataDir})
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Spec:     func(t *testing.T) provider.Spec { return spec(busybox) },
		Reopen: func(t *testing.T) provider.Provider {
			return newGVisor(t, docker.Config{DataDir: dataDir})
		},
		Slow: true,
	})
}

// TestGVisor_RunsUnderGVisor checks the sandbox really runs on gVisor's
// kernel, with the capabilities the provider advertises.
func TestGVisor_RunsUnderGVisor(t *testing.T) {
	p := newGVisor(t, docker.Config{})
	caps := p.Capabilities()
	if caps.Isolation != provider.IsolationUserspace || !caps.Boundary || p.Name() != "gvisor" {
		t.Errorf("gvisor capabilities = %+v (name %s), want userspace isolation and a boundary", caps, p.Name())
	}
	_, c := sandbox(t, p, spec(busybox))
	if out, _ := sh(t, c, "dmesg 2>&1 | head -1"); !strings.Contains(out, "gVisor") {
		t.Errorf("dmesg = %q, want gVisor's boot banner", out)
	}
}

// TestGVisor_NetworkModes checks both advertised modes do what they say:
// none has only loopback, bridge has eth0 with an address.
func TestGVisor_NetworkModes(t *testing.T) {
	p := newGVisor(t, docker.Config{})
	if !slices.Equal(p.Capabilities().NetworkModes, []string{provider.NetworkNone, provider.NetworkBridge}) {
		t.Fatalf("network modes = %v", p.Capabilities().NetworkModes)
	}
	ifaces := "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sort | tr '\\n' ' '"
	for mode, want := range map[string]string{provider.NetworkNone: "lo ", provider.NetworkBridge: "eth0 lo "} {
		t.Run(mode, func(t *testing.T) {
			sp := spec(busybox)
			sp.Network = mode
			_, c := sandbox(t, p, sp)
			if out, _ := sh(t, c, ifaces); out != want {
				t.Errorf("interfaces in a %s sandbox = %q, want %q", mode, out, want)
			}
		})
	}
}

// TestGVisor_LimitsBelowMinimumAreInvalid: gVisor counts its own threads
// against the pids limit, so tiny limits are refused up front.
func TestGVisor_LimitsBelowMinimumAreInvalid(t *testing.T) {
	p := newGVisor(t, docker.Config{})
	sp := spec(busybox)
	sp.PidsLimit = 20
	_, err := p.Create(context.Background(), sp)
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(err.Error(), "at least 64") {
		t.Errorf("Create(pids 20) = %v, want Invalid naming the minimum", err)
	}
}

// TestGVisor_UnregisteredRuntimeIsUnavailableFast: a flavour whose runtime
// the engine does not know is unhealthy, and Create says so at once (503),
// without creating anything.
func TestGVisor_UnregisteredRuntimeIsUnavailableFast(t *testing.T) {
	requireDocker(t)
	dir := shortTempDir(t)
	bad, err := docker.New(context.Background(), docker.GVisor(docker.Config{
		DataDir: dir, AgentPath: testEnv.agentPath, ServerID: testEnv.serverID, Runtime: "runsc-not-registered", Pull: docker.PullNever,
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bad.Health(ctx); errs.ClassOf(err) != errs.Unavailable {
		t.Errorf("Health = %v, want Unavailable", err)
	}
	start := time.Now()
	_, err = bad.Create(ctx, spec(busybox))
	if errs.ClassOf(err) != errs.Unavailable || time.Since(start) > 2*time.Second {
		t.Errorf("Create = %v after %v, want Unavailable within 2s", err, time.Since(start))
	}
	if hs, _ := bad.List(ctx); len(hs) != 0 {
		t.Errorf("List after a refused create = %v, want empty", hs)
	}
}

// TestFlavours_ListOnlyTheirOwn: docker and gvisor share one engine and one
// server id; each lists only its own sandboxes, so reconcile of one never
// adopts or removes the other's.
func TestFlavours_ListOnlyTheirOwn(t *testing.T) {
	dir := shortTempDir(t)
	d := newProvider(t, docker.Config{DataDir: dir + "/d"})
	g := newGVisor(t, docker.Config{DataDir: dir + "/g"})
	hd, _ := sandbox(t, d, spec(busybox))
	hg, _ := sandbox(t, g, spec(busybox))
	ctx := context.Background()
	for _, tc := range []struct {
		p         *docker.Provider
		own, that provider.Handle
	}{{d, hd, hg}, {g, hg, hd}} {
		hs, err := tc.p.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range hs {
			ids = append(ids, h.SandboxID)
			if h.Provider != tc.p.Name() {
				t.Errorf("%s listed a handle of provider %s", tc.p.Name(), h.Provider)
			}
		}
		if !slices.Contains(ids, tc.own.SandboxID) || slices.Contains(ids, tc.that.SandboxID) {
			t.Errorf("%s List = %v, want %s and not %s", tc.p.Name(), ids, tc.own.SandboxID, tc.that.SandboxID)
		}
	}
}
