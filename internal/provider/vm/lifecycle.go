package vm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/provider/hostproc"
)

// Inspect reads state.json and checks that the VMM process is alive (and
// is ours: its command line names this sandbox's control socket).
func (p *Provider) Inspect(ctx context.Context, h provider.Handle) (provider.Status, error) {
	if err := validID(h.SandboxID); err != nil {
		return provider.Status{}, err
	}
	st, err := p.readState(h.SandboxID)
	return hostproc.Inspect(err, st.StartedAt, func() bool { return p.vmm.Alive(st.Machine) }, nil, func() string {
		detail := "VM process is gone"
		if l := hostproc.TailLines(st.Console, 3); len(l) > 0 {
			detail += ": " + strings.Join(l, " | ")
		}
		return detail
	})
}

// Destroy stops the VM and removes every file of the sandbox (disk,
// initramfs, sockets, logs). Missing is not an error.
func (p *Provider) Destroy(ctx context.Context, h provider.Handle) error {
	if err := validID(h.SandboxID); err != nil {
		return err
	}
	p.dropChannel(h.SandboxID)
	st, err := p.readState(h.SandboxID)
	if err == nil {
		if err := p.vmm.Stop(ctx, st.Machine); err != nil {
			return errs.Wrap(errs.Timeout, err, "stop VM of %s", h.SandboxID)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		p.log.Warn("unreadable vm state; removing the directory anyway", "sandbox_id", h.SandboxID, "err", err)
	}
	if err := os.RemoveAll(p.dir(h.SandboxID)); err != nil {
		return errs.Wrap(errs.Internal, err, "remove vm sandbox dir")
	}
	return nil
}

// List returns the sandboxes whose state.json names this server.
func (p *Provider) List(ctx context.Context) ([]provider.Handle, error) {
	return hostproc.List(filepath.Join(p.cfg.DataDir, "run"), "vm", p.cfg.ServerID, validID, p.readState, p.handle)
}

// Agent returns the cached client for h's agent; NotFound once destroyed.
func (p *Provider) Agent(ctx context.Context, h provider.Handle) (*agent.Client, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	p.mu.Lock()
	c := p.clients[h.SandboxID]
	p.mu.Unlock()
	if c != nil {
		return c, nil
	}
	if _, err := p.readState(h.SandboxID); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, errs.New(errs.NotFound, "sandbox %s has no VM", h.SandboxID)
		}
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.clients[h.SandboxID]; c != nil {
		return c, nil
	}
	c = agent.NewClient(p.dialer(h.SandboxID))
	p.clients[h.SandboxID] = c
	return c, nil
}

// Logs returns the last lines of the VM's serial console: kernel messages
// and the agent's own log.
func (p *Provider) Logs(ctx context.Context, h provider.Handle, lines int) ([]string, error) {
	if err := validID(h.SandboxID); err != nil {
		return nil, err
	}
	if lines <= 0 {
		lines = 100
	}
	path := filepath.Join(p.dir(h.SandboxID), "console.log")
	if _, err := os.Stat(path); err != nil {
		return nil, errs.New(errs.NotFound, "sandbox %s has no console log", h.SandboxID)
	}
	return hostproc.TailLines(path, lines), nil
}

func itoa(n int) string { return strconv.Itoa(n) }
