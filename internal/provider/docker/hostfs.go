package docker

import (
	"bytes"
	"context"
	"os"
	"strconv"

	"github.com/moby/moby/client"

	"github.com/stacyvm/stacyvm/internal/provider"
)

// HostRoot opens the sandbox's root directory as its processes see it,
// through /proc/<pid>/root of the container's init (our agent): the walk
// happens in the container's mount namespace, so tmpfs mounts and the
// read-only rootfs behave exactly as they do for the agent. It refuses (ok =
// false) unless writing there is equivalent to the agent writing:
//   - the runtime is runc (gVisor and Kata keep the filesystem elsewhere);
//   - the sandbox runs as root and the container has no user namespace, so
//     files get the owner they would get from the agent;
//   - the opened root really is this sandbox's: its /.stacyvm/run is the
//     same inode as our host-side socket directory. That check also defeats
//     PID reuse between the inspect and the open.
//
// See docs/decisions/007-host-upload-path.md.
func (p *Provider) HostRoot(ctx context.Context, h provider.Handle) (*os.Root, bool) {
	if p.cfg.Runtime != "" && p.cfg.Runtime != "runc" {
		return nil, false
	}
	if p.cfg.User != "" && p.cfg.User != "0" && p.cfg.User != "root" && p.cfg.User != "0:0" {
		return nil, false
	}
	if validID(h.SandboxID) != nil {
		return nil, false
	}
	res, err := p.cli.ContainerInspect(ctx, ref(h), client.ContainerInspectOptions{})
	if err != nil || res.Container.State == nil || !res.Container.State.Running || res.Container.State.Pid <= 0 {
		return nil, false
	}
	if c := res.Container.Config; c != nil && c.User != "" && c.User != "0" && c.User != "root" && c.User != "0:0" {
		return nil, false
	}
	proc := "/proc/" + strconv.Itoa(res.Container.State.Pid)
	if !identityMap(proc + "/uid_map") {
		return nil, false
	}
	root, err := os.OpenRoot(proc + "/root")
	if err != nil {
		return nil, false
	}
	inside, err1 := root.Stat(runDirInContainer[1:])
	host, err2 := os.Stat(p.sandboxDir(h.SandboxID))
	if err1 != nil || err2 != nil || !os.SameFile(inside, host) {
		root.Close()
		return nil, false
	}
	return root, true
}

// identityMap reports whether a /proc/<pid>/uid_map is the initial user
// namespace's ("0 0 4294967295"): no remapping of owners.
func identityMap(path string) bool {
	b, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	f := bytes.Fields(b)
	return len(f) == 3 && string(f[0]) == "0" && string(f[1]) == "0" && string(f[2]) == "4294967295"
}
