package mock

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// Inspect reads handle.json and checks that its pid is alive and is still
// our agent (its cmdline names our binary and this sandbox's socket), so a
// reused pid is never mistaken for the sandbox.
func (p *Provider) Inspect(ctx context.Context, h provider.Handle) (provider.Status, error) {
	if err := validID(h.SandboxID); err != nil {
		return provider.Status{}, err
	}
	st, err := p.readState(h.SandboxID)
	p.mu.Lock()
	pr := p.procs[h.SandboxID]
	p.mu.Unlock()
	return hostproc.Inspect(err, st.StartedAt, func() bool { return p.isOurAgent(st) }, pr, func() string { return "agent process is gone" })
}

// isOurAgent reports whether st.PID is a live (not zombie) process running
// our agent binary on st's socket.
func (p *Provider) isOurAgent(st state) bool {
	if st.PID <= 0 {
		return false
	}
	args, ok := hostproc.AgentArgs(st.PID, p.cfg.AgentPath)
	return ok && slices.Contains(args, "unix://"+st.Socket)
}

// Destroy kills every process in the agent's session (the agent and all
// it started) and removes the sandbox directory. Missing is not an error.
func (p *Provider) Destroy(ctx context.Context, h provider.Handle) error {
	if err := validID(h.SandboxID); err != nil {
		return err
	}
	p.agents.Drop(h.SandboxID)
	p.mu.Lock()
	pr := p.procs[h.SandboxID]
	delete(p.procs, h.SandboxID)
	p.mu.Unlock()
	st, err := p.readState(h.SandboxID)
	switch {
	case err == nil && p.isOurAgent(st):
		hostproc.KillSession(st.PID)
	case pr != nil:
		hostproc.KillSession(pr.PID)
	}
	if pr != nil {
		select {
		case <-pr.Done:
		case <-ctx.Done():
			return errs.Wrap(errs.Timeout, ctx.Err(), "mock agent did not exit")
		}
	} else if err == nil {
		hostproc.WaitGone(ctx, st.PID)
	}
	if err := os.RemoveAll(p.dir(h.SandboxID)); err != nil {
		return errs.Wrap(errs.Internal, err, "remove mock sandbox dir")
	}
	return nil
}

// List returns the sandboxes whose handle.json names this server.
func (p *Provider) List(ctx context.Context) ([]provider.Handle, error) {
	return hostproc.List(filepath.Join(p.cfg.DataDir, "mock"), "mock", p.cfg.ServerID, validID, p.readState, p.handle)
}

// Agent returns the cached client for h's agent; NotFound once destroyed.
func (p *Provider) Agent(ctx context.Context, h provider.Handle) (*agent.Client, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
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
