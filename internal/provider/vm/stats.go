package vm

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// statsSample is how long Stats watches the VMM's CPU time.
const statsSample = 200 * time.Millisecond

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on every
// Linux architecture Go supports).
const clockTicks = 100

// Stats reports what the VM costs the host: the VMM process's CPU use
// (sampled over 200 ms; 100 = one core) and resident memory, against the
// guest's memory size as the limit. Guest-internal figures would need a
// guest agent call and leave out the VMM's own overhead.
func (p *Provider) Stats(ctx context.Context, h provider.Handle) (provider.Stats, error) {
	if err := validID(h.SandboxID); err != nil {
		return provider.Stats{}, err
	}
	st, err := p.readState(h.SandboxID)
	if errors.Is(err, os.ErrNotExist) {
		return provider.Stats{}, errs.New(errs.NotFound, "sandbox %s has no VM", h.SandboxID)
	}
	if err != nil {
		return provider.Stats{}, err
	}
	if !p.vmm.Alive(st.Machine) {
		return provider.Stats{}, errs.New(errs.Conflict, "the VM of %s is not running", h.SandboxID)
	}
	pid := st.Machine.PID
	t0, ok := cpuTicks(pid)
	start := time.Now()
	if !ok {
		return provider.Stats{}, errs.New(errs.NotFound, "the VM of %s is gone", h.SandboxID)
	}
	select {
	case <-ctx.Done():
		return provider.Stats{}, errs.Wrap(errs.Timeout, ctx.Err(), "stats cancelled")
	case <-time.After(statsSample):
	}
	t1, ok := cpuTicks(pid)
	if !ok {
		return provider.Stats{}, errs.New(errs.NotFound, "the VM of %s is gone", h.SandboxID)
	}
	el := time.Since(start).Seconds()
	return provider.Stats{
		CPUPercent:    float64(t1-t0) / clockTicks / el * 100,
		MemBytes:      rssBytes(pid),
		MemLimitBytes: uint64(st.MemoryMB) << 20,
	}, nil
}

// cpuTicks returns utime+stime of pid.
func cpuTicks(pid int) (uint64, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 > len(s) {
		return 0, false
	}
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	k, _ := strconv.ParseUint(f[12], 10, 64)
	return u + k, true
}

// rssBytes returns VmRSS of pid, 0 if unknown.
func rssBytes(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

var _ provider.StatsReporter = (*Provider)(nil)
