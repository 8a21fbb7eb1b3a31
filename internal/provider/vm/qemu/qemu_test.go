package qemu

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stacyvm/stacyvm/internal/provider/vm/vmm"
)

func TestArgs_TCGAndKVMAndNetwork(t *testing.T) {
	spec := vmm.Spec{ID: "sb-1", Dir: "/d", Kernel: "/k", Initrd: "/i", RootDisk: "/d/disk.qcow2", DiskFormat: "qcow2",
		MemoryMB: 256, VCPUs: 2, Accel: vmm.AccelTCG, ConsoleLog: "/d/console.log", Cmdline: Cmdline(2500000)}
	a, err := Args(spec)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(a, " ")
	for _, want := range []string{"-accel tcg -cpu max", "-m 256", "-smp 2", "unix:/d/qmp.sock,server=on,wait=off",
		"socket,id=agent,path=/d/channel.sock,server=on,wait=off", "virtserialport,chardev=agent,name=stacyvm.agent",
		"file=/d/disk.qcow2,format=qcow2", "-kernel /k", "-initrd /i", "-no-reboot",
		"-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"} {
		if !strings.Contains(joined, want) {
			t.Errorf("args lack %q: %s", want, joined)
		}
	}
	if slices.Contains(a, "-netdev") {
		t.Errorf("network none has a netdev: %s", joined)
	}
	spec.Accel, spec.Network = vmm.AccelKVM, vmm.NetworkUser
	a, _ = Args(spec)
	joined = strings.Join(a, " ")
	if !strings.Contains(joined, "-accel kvm -cpu host,-arch-capabilities") || !strings.Contains(joined, "-netdev user,id=net0") {
		t.Errorf("kvm/user args wrong: %s", joined)
	}
	for _, bad := range []vmm.Spec{{Dir: "/d"}, {ID: "x", Dir: "/d", Kernel: "/k", Initrd: "/i", RootDisk: "/r", Accel: "hvf"},
		{ID: "x", Dir: "/d", Kernel: "/k", Initrd: "/i", RootDisk: "/r", Network: "tap"}} {
		if _, err := Args(bad); err == nil {
			t.Errorf("Args(%+v) = nil error", bad)
		}
	}
}

// TestProbe boots the kernel's banner under TCG (must work) and under KVM
// (reported, whatever happens: on nested kvm_pvm hosts it times out).
func TestProbe(t *testing.T) {
	kernel := os.Getenv("STACYVM_VM_KERNEL")
	if kernel == "" {
		kernel = "/var/lib/stacyvm/vm-assets/vmlinux"
	}
	if _, err := exec.LookPath(DefaultBinary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s missing and CI=true", DefaultBinary)
		}
		t.Skip("qemu not installed")
	}
	if _, err := os.Stat(kernel); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kernel missing and CI=true: %v", err)
		}
		t.Skip("kernel not built (scripts/build-vm-assets.sh)")
	}
	d, err := probeBanner(context.Background(), "", kernel, "tcg", 30*time.Second)
	if err != nil {
		t.Fatalf("TCG banner: %v", err)
	}
	t.Logf("TCG: kernel banner after %v", d)
	d, err = ProbeKVM(context.Background(), "", kernel, 5*time.Second)
	t.Logf("KVM probe: banner after %v, err %v", d, err)
}

func TestCmdline_UsesHostTSC(t *testing.T) {
	if got := Cmdline(2596132); !strings.Contains(got, "tsc_early_khz=2596132 ") {
		t.Errorf("Cmdline = %q", got)
	}
	if got := Cmdline(0); !strings.Contains(got, "tsc_early_khz=2000000 ") {
		t.Errorf("Cmdline(0) = %q", got)
	}
	if HostTSCKHz() <= 0 {
		t.Log("host TSC rate unknown here; the default is used")
	}
}
