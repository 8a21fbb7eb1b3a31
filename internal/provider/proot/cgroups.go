package proot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupRoot is where cgroup v1 hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// cgroups places each sandbox's process tree in its own cgroup v1 group
// under <controller>/<parent>/<id> for memory, cpu and pids: limits are
// enforced by the kernel, and the pids group's cgroup.procs lists every
// process of the sandbox, however it daemonised, so Destroy kills them all.
type cgroups struct {
	parent string
}

var controllers = []string{"pids", "memory", "cpu"}

// probeCgroups returns nil unless every controller's hierarchy is mounted
// and writable (root on a cgroup v1 or hybrid host).
func probeCgroups(parent string) *cgroups {
	for _, c := range controllers {
		dir := filepath.Join(cgroupRoot, c, parent)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil
		}
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			return nil
		}
	}
	return &cgroups{parent: parent}
}

func (g *cgroups) dir(controller, id string) string {
	return filepath.Join(cgroupRoot, controller, g.parent, id)
}

// create makes the sandbox's groups with its limits and returns the
// cgroup.procs files a process writes its pid to, to join them all.
func (g *cgroups) create(id string, memMB int, cpus float64, pids int64) ([]string, error) {
	var procs []string
	for _, c := range controllers {
		d := g.dir(c, id)
		if err := os.Mkdir(d, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			g.remove(id)
			return nil, err
		}
		procs = append(procs, filepath.Join(d, "cgroup.procs"))
	}
	limits := map[string]string{}
	if memMB > 0 {
		b := strconv.FormatInt(int64(memMB)<<20, 10)
		limits[filepath.Join(g.dir("memory", id), "memory.limit_in_bytes")] = b
		// Without swap accounting the file is absent; memory alone still holds.
		if _, err := os.Stat(filepath.Join(g.dir("memory", id), "memory.memsw.limit_in_bytes")); err == nil {
			limits[filepath.Join(g.dir("memory", id), "memory.memsw.limit_in_bytes")] = b
		}
	}
	if cpus > 0 {
		limits[filepath.Join(g.dir("cpu", id), "cpu.cfs_period_us")] = "100000"
		limits[filepath.Join(g.dir("cpu", id), "cpu.cfs_quota_us")] = strconv.FormatInt(int64(cpus*100000), 10)
	}
	if pids > 0 {
		limits[filepath.Join(g.dir("pids", id), "pids.max")] = strconv.FormatInt(pids, 10)
	}
	// memory.limit_in_bytes before memsw, period before quota: map order
	// is random, so write in a fixed order.
	for _, f := range []string{"memory.limit_in_bytes", "memory.memsw.limit_in_bytes", "cpu.cfs_period_us", "cpu.cfs_quota_us", "pids.max"} {
		for path, v := range limits {
			if filepath.Base(path) == f {
				if err := os.WriteFile(path, []byte(v), 0o644); err != nil {
					g.remove(id)
					return nil, err
				}
			}
		}
	}
	return procs, nil
}

// members lists the pids in the sandbox's pids group.
func (g *cgroups) members(id string) []int {
	b, err := os.ReadFile(filepath.Join(g.dir("pids", id), "cgroup.procs"))
	if err != nil {
		return nil
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			out = append(out, pid)
		}
	}
	return out
}

// kill SIGKILLs every member until the group is empty (bounded by ctx and
// 3 s), so processes forked during the sweep are caught too.
func (g *cgroups) kill(ctx context.Context, id string) {
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		pids := g.members(id)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// remove deletes the sandbox's groups (they must be empty).
func (g *cgroups) remove(id string) {
	for _, c := range controllers {
		d := g.dir(c, id)
		for range 50 {
			err := os.Remove(d)
			if err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(10 * time.Millisecond) // exiting tasks leave the group asynchronously
		}
	}
}
