package qemu

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// kvmGetAPIVersion is the KVM_GET_API_VERSION ioctl; every usable KVM
// answers 12.
const kvmGetAPIVersion = 0xAE00

// KVMDevice checks that /dev/kvm can be opened and speaks the stable KVM
// API. It says nothing about speed: see ProbeKVM.
func KVMDevice() error {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	v, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmGetAPIVersion, 0)
	if e != 0 {
		return fmt.Errorf("KVM_GET_API_VERSION: %w", e)
	}
	if v != 12 {
		return fmt.Errorf("KVM API version %d, want 12", v)
	}
	return nil
}

// ProbeKVM boots kernel under KVM without an initrd and waits, at most
// timeout, for the kernel's banner on the serial console. A working KVM
// prints it within a fraction of a second; nested set-ups that expose
// /dev/kvm but run guests hundreds of times slower (kvm_pvm) do not, and
// the VM provider then falls back to TCG. It returns how long the banner
// took, or an error saying what happened.
func ProbeKVM(ctx context.Context, binary, kernel string, timeout time.Duration) (time.Duration, error) {
	if err := KVMDevice(); err != nil {
		return 0, fmt.Errorf("/dev/kvm unusable: %w", err)
	}
	return probeBanner(ctx, binary, kernel, "kvm", timeout)
}

// probeBanner boots kernel with accel and waits for "Linux version".
func probeBanner(ctx context.Context, binary, kernel, accel string, timeout time.Duration) (time.Duration, error) {
	if binary == "" {
		binary = DefaultBinary
	}
	cpu := "max"
	if accel == "kvm" {
		cpu = "host,-arch-capabilities"
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary,
		"-M", "microvm,x-option-roms=off,isa-serial=on,rtc=on,pit=on,pic=on",
		"-accel", accel, "-cpu", cpu, "-m", "128", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-kernel", kernel,
		"-append", "console=ttyS0 earlyprintk=ttyS0 panic=-1 reboot=t tsc_early_khz=2000000 tsc=reliable")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	found := make(chan time.Duration, 1)
	go func() { // ends when the pipe closes (process killed)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "Linux version") {
				found <- time.Since(start)
				break
			}
		}
		for sc.Scan() { // keep the pipe drained
		}
	}()
	select {
	case d := <-found:
		return d, nil
	case <-ctx.Done():
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no output"
		}
		return 0, fmt.Errorf("no kernel banner under %s within %v (%s)", accel, timeout, msg)
	}
}

// ProbeTCG boots kernel under TCG emulation and waits for its banner.
func ProbeTCG(ctx context.Context, binary, kernel string, timeout time.Duration) (time.Duration, error) {
	return probeBanner(ctx, binary, kernel, "tcg", timeout)
}
