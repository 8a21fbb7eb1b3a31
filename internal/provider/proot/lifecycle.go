package proot

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// Inspect reads handle.json and checks its pid is alive and still this
// sandbox's agent (its command line names this sandbox's root), so a
// reused pid is never mistaken for the sandbox.
func (p *Provider) Inspect(ctx context.Context, h provider.Handle) (provider.Status, error) {
	if err := validID(h.SandboxID); err != nil {
		return provider.Status{}, err
	}
	st, err := p.readState(h.SandboxID)
	p.mu.Lock()
	pr := p.procs[h.SandboxID]
	p.mu.Unlock()
	return hostproc.Inspect(err, st.StartedAt, func() bool { return p.isOurs(st) }, pr, func() string { return "sandbox agent is gone" })
}

// isOurs reports whether st.PID is a live process running our agent on
// st.Root.
func (p *Provider) isOurs(st state) bool {
	if st.PID <= 1 {
		return false
	}
	args, ok := hostproc.AgentArgs(st.PID, p.cfg.AgentPath)
	if !ok {
		return false
	}
	i := slices.Index(args, "--root")
	return i >= 0 && i+1 < len(args) && args[i+1] == st.Root && st.Root == filepath.Join(p.dir(st.SandboxID), "root")
}

// Destroy kills the sandbox's whole process tree (its cgroup, else its
// session), then removes its cgroups and directory. Missing is not an error.
func (p *Provider) Destroy(ctx context.Context, h provider.Handle) error {
	if err := validID(h.SandboxID); err != nil {
		return err
	}
	start := time.Now()
	p.agents.Drop(h.SandboxID)
	p.mu.Lock()
	pr := p.procs[h.SandboxID]
	delete(p.procs, h.SandboxID)
	p.mu.Unlock()
	st, err := p.readState(h.SandboxID)
	pid := 0
	switch {
	case err == nil && p.isOurs(st):
		pid = st.PID
	case pr != nil:
		pid = pr.PID
	}
	p.killTree(ctx, h.SandboxID, pid)
	if pr != nil {
		select {
		case <-pr.Done:
		case <-ctx.Done():
			return errs.Wrap(errs.Timeout, ctx.Err(), "sandbox agent did not exit")
		}
	} else if pid > 0 {
		hostproc.WaitGone(ctx, pid)
	}
	if p.cgroups != nil {
		p.cgroups.remove(h.SandboxID)
	}
	if _, err := os.Lstat(p.dir(h.SandboxID)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unmountRoot(filepath.Join(p.dir(h.SandboxID), "root")) // before removing: never delete through a live mount
	if err := forceRemoveAll(p.dir(h.SandboxID)); err != nil {
		return errs.Wrap(errs.Internal, err, "remove proot sandbox dir")
	}
	p.log.Info("proot sandbox destroyed", "sandbox_id", h.SandboxID, "ms", time.Since(start).Milliseconds())
	return nil
}

// killTree SIGKILLs every process of the sandbox: the members of its pids
// cgroup (which catches processes that left the session), and the session
// proot leads.
func (p *Provider) killTree(ctx context.Context, id string, sid int) {
	if sid > 1 {
		hostproc.KillSession(sid)
	}
	if p.cgroups != nil {
		p.cgroups.kill(ctx, id)
	}
}

// List returns the sandboxes whose handle.json names this server.
func (p *Provider) List(ctx context.Context) ([]provider.Handle, error) {
	return hostproc.List(filepath.Join(p.cfg.DataDir, "sb"), "proot", p.cfg.ServerID, validID, p.readState, p.handle)
}

// Agent returns the cached client for h's agent; NotFound once destroyed.
// The socket path is derived from the data dir and the validated id, never
// read from the handle.
func (p *Provider) Agent(ctx context.Context, h provider.Handle) (*agent.Client, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "request cancelled")
	}
	return p.agents.Unix(h.SandboxID, p.socket(h.SandboxID))
}

// Logs returns the last lines of the agent's console.log.
func (p *Provider) Logs(ctx context.Context, h provider.Handle, lines int) ([]string, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	return hostproc.Logs(p.dir(h.SandboxID), h.SandboxID, lines)
}
