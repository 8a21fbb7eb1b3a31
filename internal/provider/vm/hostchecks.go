package vm

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/vm/firecracker"
	"github.com/stacyvm/stacyvm/internal/provider/vm/qemu"
)

const assetsRemedy = "scripts/build-vm-assets.sh (run by scripts/ci-prepare.sh)"

// HostChecks reports the host preconditions of the vm provider for cfg's
// backend: for QEMU (the default) the binaries, the boot assets, the image
// conversion tools, /dev/kvm and whether KVM guests actually run (a short
// probe boot), and TCG emulation; for Backend "firecracker" its binary, the
// jailer and KVM (Firecracker has no emulated mode). It never fails
// itself: an absent runtime is CheckNotInstalled, never CheckPass. A KVM
// that is present but unusable is CheckNotInstalled when the provider may
// fall back to TCG (Accel auto or tcg) and CheckFail when cfg forces kvm.
// The probes boot QEMU briefly, so this takes a few seconds.
func HostChecks(ctx context.Context, cfg Config) []provider.HostCheck {
	cfg.setDefaults()
	var out []provider.HostCheck
	add := func(name, status, detail, remedy string) {
		out = append(out, provider.HostCheck{Name: name, Status: status, Detail: detail, Remedy: remedy})
	}
	if cfg.Backend == "firecracker" {
		firecrackerChecks(ctx, cfg, add)
		return out
	}
	qemuPath, err := exec.LookPath(cfg.QEMUBinary)
	if err != nil {
		add("qemu binary", provider.CheckNotInstalled, cfg.QEMUBinary+" not found on PATH", "apt-get install qemu-system-x86 (scripts/ci-prepare.sh)")
		return out
	}
	add("qemu binary", provider.CheckPass, qemuPath+" ("+firstLine(ctx, qemuPath, "--version")+")", "")
	for _, tool := range []struct{ bin, pkg string }{{"qemu-img", "qemu-utils"}, {"mkfs.ext4", "e2fsprogs"}, {"tar", "tar"}} {
		if p, err := exec.LookPath(tool.bin); err != nil {
			add(tool.bin, provider.CheckFail, tool.bin+" not found (needed to build sandbox disks)", "apt-get install "+tool.pkg)
		} else {
			add(tool.bin, provider.CheckPass, p, "")
		}
	}
	kernelOK := checkAsset(add, "vm kernel", cfg.Kernel, "\x7fELF")
	checkAsset(add, "vm initramfs", cfg.InitrdBase, "\x1f\x8b")
	if b, err := os.ReadFile(filepath.Join(cfg.AssetsDir, "assets.json")); err == nil {
		var a struct {
			Recipe  int    `json:"recipe"`
			Package string `json:"kernel_package"`
			Version string `json:"kernel_version"`
		}
		if json.Unmarshal(b, &a) == nil {
			add("vm assets recipe", provider.CheckPass, fmt.Sprintf("recipe %d, %s (%s)", a.Recipe, a.Package, a.Version), "")
		}
	}
	if cfg.AgentPath != "" {
		if fi, err := os.Stat(cfg.AgentPath); err != nil || !fi.Mode().IsRegular() {
			add("agent binary", provider.CheckFail, cfg.AgentPath+" missing", "make build")
		} else {
			add("agent binary", provider.CheckPass, cfg.AgentPath, "")
		}
	}
	if cfg.DataDir != "" {
		imgs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "images", "*", "rootfs.ext4"))
		add("vm root disks", provider.CheckPass, fmt.Sprintf("%d image(s) converted under %s; others are converted on first use (stacyvm build-image IMAGE)", len(imgs), filepath.Join(cfg.DataDir, "images")), "")
	}
	if !kernelOK {
		return out
	}
	// KVM: the device, then a probe boot (a nested kvm_pvm host exposes a
	// working /dev/kvm whose guests crawl).
	kvmFail := provider.CheckNotInstalled
	if cfg.Accel == AccelKVM {
		kvmFail = provider.CheckFail
	}
	if err := qemu.KVMDevice(); err != nil {
		add("/dev/kvm", kvmFail, err.Error(), "enable hardware virtualisation (or nested virtualisation) for this host")
	} else if d, err := qemu.ProbeKVM(ctx, qemuPath, cfg.Kernel, cfg.KVMProbeTimeout); err != nil {
		add("kvm guests run", kvmFail, "/dev/kvm opens, but "+err.Error()+"; sandboxes use TCG emulation", "")
	} else {
		add("kvm guests run", provider.CheckPass, "kernel banner after "+d.Round(time.Millisecond).String(), "")
	}
	if cfg.Accel != AccelKVM {
		if d, err := qemu.ProbeTCG(ctx, qemuPath, cfg.Kernel, 30*time.Second); err != nil {
			add("tcg emulation", provider.CheckFail, err.Error(), "")
		} else {
			add("tcg emulation", provider.CheckPass, "kernel banner after "+d.Round(time.Millisecond).String(), "")
		}
	}
	return out
}

func firecrackerChecks(ctx context.Context, cfg Config, add func(name, status, detail, remedy string)) {
	const remedy = "install Firecracker and its jailer from the project's release binaries (not packaged by Debian)"
	p, err := exec.LookPath(firecracker.DefaultBinary)
	if err != nil {
		add("firecracker binary", provider.CheckNotInstalled, "firecracker not found on PATH", remedy)
		add("jailer binary", provider.CheckNotInstalled, "not checked: firecracker is not installed", remedy)
		return
	}
	v, _ := firecracker.Version(ctx, p)
	add("firecracker binary", provider.CheckPass, p+" ("+v+")", "")
	if jp, err := exec.LookPath("jailer"); err != nil {
		add("jailer binary", provider.CheckFail, "jailer not found on PATH", remedy)
	} else {
		add("jailer binary", provider.CheckPass, jp, "")
	}
	if err := qemu.KVMDevice(); err != nil {
		add("/dev/kvm", provider.CheckFail, err.Error()+" (Firecracker has no emulated mode)", "")
	} else {
		add("/dev/kvm", provider.CheckPass, "KVM API 12", "")
	}
	checkAsset(add, "vm kernel", cfg.Kernel, "\x7fELF")
	add("vm provider backend", provider.CheckFail, "the vm provider does not drive Firecracker yet (raw disks, vsock dialing, a kernel with command-line virtio-mmio devices; docs/vm.md)", "")
}

// checkAsset reports whether path exists and starts with magic.
func checkAsset(add func(name, status, detail, remedy string), name, path, magic string) bool {
	f, err := os.Open(path)
	if err != nil {
		add(name, provider.CheckFail, path+" missing", assetsRemedy)
		return false
	}
	defer f.Close()
	head := make([]byte, len(magic))
	if _, err := f.Read(head); err != nil || !bytes.Equal(head, []byte(magic)) {
		add(name, provider.CheckFail, path+" is not in the expected format", assetsRemedy)
		return false
	}
	fi, _ := f.Stat()
	add(name, provider.CheckPass, fmt.Sprintf("%s (%s)", path, fmtBytes(fi.Size())), "")
	return true
}

// firstLine runs bin with args and returns the first line of its output.
func firstLine(ctx context.Context, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	if err != nil {
		return "version unknown"
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Scan()
	return strings.TrimSpace(sc.Text())
}
