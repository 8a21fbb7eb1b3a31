package vm_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/providertest"
	"github.com/stacyvm/stacyvm/internal/provider/vm"
	"github.com/stacyvm/stacyvm/internal/provider/vm/vmm"
)

const busybox = "stacyvm/busybox:latest"

// env is set once by TestMain and read-only afterwards.
type env struct {
	agentPath string
	assets    string
	skip      string // non-empty: why VM tests are skipped
	serverID  string
}

var testEnv env

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "stacyvm-vm-agent-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testEnv.agentPath = filepath.Join(dir, "stacyvm-agent")
	testEnv.serverID = "test-" + providertest.NewSandboxID()
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", testEnv.agentPath, "github.com/stacyvm/stacyvm/cmd/stacyvm-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build agent: %v\n%s", err, out)
		return 1
	}
	testEnv.assets = os.Getenv("STACYVM_VM_ASSETS")
	if testEnv.assets == "" {
		testEnv.assets = vm.DefaultAssetsDir
	}
	var missing []string
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		missing = append(missing, "qemu-system-x86_64 (apt-get install qemu-system-x86)")
	}
	if _, err := exec.LookPath("qemu-img"); err != nil {
		missing = append(missing, "qemu-img (apt-get install qemu-utils)")
	}
	for _, f := range []string{"vmlinux", "initrd-base.img"} {
		if _, err := os.Stat(filepath.Join(testEnv.assets, f)); err != nil {
			missing = append(missing, filepath.Join(testEnv.assets, f)+" (scripts/build-vm-assets.sh)")
		}
	}
	if err := exec.Command("docker", "image", "inspect", busybox).Run(); err != nil {
		missing = append(missing, busybox+" (scripts/build-images.sh busybox)")
	}
	if len(missing) > 0 {
		if os.Getenv("CI") == "true" {
			fmt.Fprintf(os.Stderr, "vm provider tests need %s, and CI=true\n", strings.Join(missing, ", "))
			return 1
		}
		testEnv.skip = "missing " + strings.Join(missing, ", ") + "; set CI=true to make this a failure"
	}
	return m.Run()
}

func needVM(t *testing.T) {
	t.Helper()
	if testEnv.skip != "" {
		t.Skip(testEnv.skip)
	}
}

// newProvider returns a TCG provider on dataDir; t.Cleanup closes it.
func newProvider(t *testing.T, dataDir string, mod func(*vm.Config)) *vm.Provider {
	t.Helper()
	cfg := vm.Config{
		DataDir:   dataDir,
		AgentPath: testEnv.agentPath,
		ServerID:  testEnv.serverID,
		AssetsDir: testEnv.assets,
		Accel:     vm.AccelTCG,
		// Small guests: TCG only touches what the guest uses, but the
		// machine is shared.
		DefaultMemoryMB: 256,
		BootTimeout:     120 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	p, err := vm.New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatalf("vm.New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// dataDir is a short temporary directory (unix socket paths live in it).
func dataDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "svm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Leak guard: a VM a failed test did not destroy dies with its dir.
		states, _ := filepath.Glob(filepath.Join(d, "run", "*", "state.json"))
		for _, f := range states {
			var st struct {
				Machine vmm.Machine `json:"machine"`
			}
			if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &st) == nil {
				if vmm.ProcessAlive(st.Machine.PID, st.Machine.ControlSocket) {
					t.Errorf("VM %s (pid %d) was left running; killing it", filepath.Base(filepath.Dir(f)), st.Machine.PID)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				vmm.KillAndWait(ctx, st.Machine.PID, st.Machine.ControlSocket)
				cancel()
			}
		}
		os.RemoveAll(d)
	})
	return d
}

func TestConformance(t *testing.T) {
	needVM(t)
	dir := dataDir(t)
	p := newProvider(t, dir, nil)
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Spec: func(t *testing.T) provider.Spec {
			// The service's default pids limit, enforced in the guest.
			return provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox, PidsLimit: 256}
		},
		Reopen: func(t *testing.T) provider.Provider { return newProvider(t, dir, nil) },
		Slow:   true,
	})
}

// qemuProcesses lists QEMU processes whose command line mentions s.
func qemuProcesses(t *testing.T, s string) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-af", "qemu-system").Output()
	var hits []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, s) {
			hits = append(hits, l)
		}
	}
	return hits
}

// TestCreate_BootFailureLeavesNothing: a kernel QEMU cannot boot makes
// Create fail, and no process, socket, disk or directory is left.
func TestCreate_BootFailureLeavesNothing(t *testing.T) {
	needVM(t)
	dir := dataDir(t)
	bad := filepath.Join(dir, "corrupt-vmlinux")
	if err := os.WriteFile(bad, []byte("this is not a kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*vm.Config){
		"corrupt kernel": func(c *vm.Config) { c.Kernel = bad },
		// Boots a kernel that finds no initramfs it can use: the guest
		// panics, QEMU exits, Create must notice instead of waiting.
		"corrupt initramfs": func(c *vm.Config) { c.InitrdBase = bad },
		// A guest that is still booting when the boot timeout ends: the
		// running QEMU must be stopped.
		"boot timeout": func(c *vm.Config) { c.BootTimeout = 1500 * time.Millisecond },
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			p := newProvider(t, dir, mod)
			id := providertest.NewSandboxID()
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			_, err := p.Create(ctx, provider.Spec{SandboxID: id, Image: busybox})
			if err == nil {
				t.Fatal("Create with a corrupt boot asset succeeded")
			}
			t.Logf("Create failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
			if _, serr := os.Stat(filepath.Join(dir, "run", id)); !os.IsNotExist(serr) {
				t.Errorf("sandbox dir left behind: %v", serr)
			}
			if ps := qemuProcesses(t, id); len(ps) > 0 {
				t.Errorf("QEMU processes left behind: %v", ps)
			}
			if hs, _ := p.List(ctx); len(hs) != 0 {
				t.Errorf("List after failed Create = %v, want empty", hs)
			}
		})
	}
}

func TestCreate_BadInput(t *testing.T) {
	needVM(t)
	p := newProvider(t, dataDir(t), nil)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		spec provider.Spec
	}{
		{"unknown image", provider.Spec{SandboxID: providertest.NewSandboxID(), Image: "stacyvm/no-such-image:never"}},
		{"bad network", provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox, Network: "allowlist"}},
		{"too little memory", provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox, MemoryMB: 8}},
		{"negative vcpus", provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox, VCPUs: -1}},
		{"bad id", provider.Spec{SandboxID: "../x", Image: busybox}},
		{"bad env", provider.Spec{SandboxID: providertest.NewSandboxID(), Image: busybox, Env: map[string]string{"A=B": "c"}}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			_, err := p.Create(ctx, tc.spec)
			if errs.ClassOf(err) != errs.Invalid {
				t.Errorf("Create = %v (class %v), want Invalid", err, errs.ClassOf(err))
			}
		})
	}
}

func TestNew_RejectsBadConfig(t *testing.T) {
	base := vm.Config{DataDir: "/tmp/x", AgentPath: "/bin/true", ServerID: "s"}
	for name, mod := range map[string]func(*vm.Config){
		"relative data dir": func(c *vm.Config) { c.DataDir = "rel" },
		"no server id":      func(c *vm.Config) { c.ServerID = "" },
		"bad accel":         func(c *vm.Config) { c.Accel = "hvf" },
		"firecracker":       func(c *vm.Config) { c.Backend = "firecracker" },
		"unknown backend":   func(c *vm.Config) { c.Backend = "bhyve" },
	} {
		c := base
		mod(&c)
		if _, err := vm.New(context.Background(), c, nil); errs.ClassOf(err) != errs.Invalid {
			t.Errorf("%s: New = %v, want Invalid", name, err)
		}
	}
}

func TestHostChecks(t *testing.T) {
	needVM(t)
	ctx := context.Background()
	checks := vm.HostChecks(ctx, vm.Config{AssetsDir: testEnv.assets, AgentPath: testEnv.agentPath, DataDir: dataDir(t)})
	got := map[string]provider.HostCheck{}
	for _, c := range checks {
		t.Logf("%-18s %-13s %s", c.Name, c.Status, c.Detail)
		got[c.Name] = c
	}
	for _, name := range []string{"qemu binary", "qemu-img", "mkfs.ext4", "vm kernel", "vm initramfs", "agent binary", "tcg emulation"} {
		if got[name].Status != provider.CheckPass {
			t.Errorf("check %q = %+v, want PASS", name, got[name])
		}
	}
	// KVM is reported either way; here (nested kvm_pvm) it is not usable,
	// which must never read as a failure of the TCG-backed provider.
	kvm, ok := got["kvm guests run"]
	if !ok {
		kvm, ok = got["/dev/kvm"]
	}
	if !ok || kvm.Status == provider.CheckFail {
		t.Errorf("KVM check = %+v, want PASS or NOT INSTALLED", kvm)
	}

	bad := vm.HostChecks(ctx, vm.Config{AssetsDir: t.TempDir()})
	for _, c := range bad {
		if c.Name == "vm kernel" && c.Status != provider.CheckFail {
			t.Errorf("missing kernel = %+v, want FAIL", c)
		}
	}

	if _, err := exec.LookPath("firecracker"); err == nil {
		t.Skip("firecracker is installed here")
	}
	fc := vm.HostChecks(ctx, vm.Config{Backend: "firecracker"})
	if len(fc) == 0 || fc[0].Name != "firecracker binary" || fc[0].Status != provider.CheckNotInstalled {
		t.Errorf("firecracker checks = %+v, want the binary NOT INSTALLED first", fc)
	}
	for _, c := range fc {
		if c.Status == provider.CheckPass {
			t.Errorf("firecracker check %+v passes without firecracker", c)
		}
	}
}

// TestCreate_UnconvertibleImage: an image whose /.stacyvm is a file cannot
// be a VM root (the guest's init mounts the agent there): Invalid with the
// reason, and no cache entry or sandbox left. (Docker's export recreates
// /proc, /sys and /dev itself, so those cannot be broken this way.)
func TestCreate_UnconvertibleImage(t *testing.T) {
	needVM(t)
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, ".stacyvm"), []byte("not a directory"), 0o644)
	tag := "stacyvm-test/vm-unconvertible:" + strings.TrimPrefix(providertest.NewSandboxID(), "sb-")
	imp := exec.Command("sh", "-c", `tar -C "$1" -c . | docker import -c 'LABEL stacyvm.test=vm' - "$2"`, "sh", root, tag)
	if out, err := imp.CombinedOutput(); err != nil {
		t.Fatalf("docker import: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", "-f", tag).Run() })
	dir := dataDir(t)
	p := newProvider(t, dir, nil)
	id := providertest.NewSandboxID()
	h, err := p.Create(context.Background(), provider.Spec{SandboxID: id, Image: tag})
	if err == nil {
		p.Destroy(context.Background(), h)
	}
	if errs.ClassOf(err) != errs.Invalid || !strings.Contains(err.Error(), "/.stacyvm is not a directory") {
		t.Fatalf("Create = %v (class %v), want Invalid naming /.stacyvm", err, errs.ClassOf(err))
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "images")); len(ents) != 0 {
		t.Errorf("image cache after a failed conversion: %v", ents)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", id)); !os.IsNotExist(err) {
		t.Errorf("sandbox dir after a failed conversion: %v", err)
	}
}
