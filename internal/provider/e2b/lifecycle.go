package e2b

import (
	"context"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// runtimeIDs returns the E2B ids of h: its RuntimeID, or, for a handle
// that has none (a create that never returned), the sandboxes whose
// metadata names h.SandboxID and this server.
func (p *Provider) runtimeIDs(ctx context.Context, h provider.Handle) ([]string, error) {
	if h.RuntimeID != "" {
		return []string{h.RuntimeID}, nil
	}
	list, err := p.api.listSandboxes(ctx, p.ownMeta(h.SandboxID))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(list))
	for _, s := range list {
		if p.owns(s, h.SandboxID) {
			ids = append(ids, s.SandboxID)
		}
	}
	return ids, nil
}

// owns reports whether s is this server's sandbox id (metadata is checked
// again client side: a handle must never adopt another owner's sandbox).
func (p *Provider) owns(s sandboxDetail, id string) bool {
	return s.Metadata[metaManaged] == "true" && s.Metadata[metaServer] == p.cfg.ServerID &&
		(id == "" || s.Metadata[metaSandbox] == id)
}

// Inspect implements provider.Provider: running or paused per E2B, missing
// when E2B no longer knows the sandbox (killed or timed out).
func (p *Provider) Inspect(ctx context.Context, h provider.Handle) (provider.Status, error) {
	ids, err := p.runtimeIDs(ctx, h)
	if err != nil || len(ids) == 0 {
		return provider.Status{State: provider.RuntimeMissing}, err
	}
	s, err := p.api.getSandbox(ctx, ids[0])
	if errs.Is(err, errs.NotFound) {
		return provider.Status{State: provider.RuntimeMissing, Detail: "E2B sandbox " + ids[0] + " is gone"}, nil
	}
	if err != nil {
		return provider.Status{}, err
	}
	if !p.owns(s, h.SandboxID) {
		return provider.Status{State: provider.RuntimeMissing, Detail: "E2B sandbox " + ids[0] + " is not ours"}, nil
	}
	st := provider.Status{StartedAt: s.StartedAt, Detail: "e2b " + s.State + ", ends " + s.EndAt.Format(time.RFC3339)}
	switch s.State {
	case "running":
		st.State = provider.RuntimeRunning
	default: // "paused": exists, nothing runs
		st.State = provider.RuntimeStopped
	}
	return st, nil
}

// Destroy implements provider.Provider: kills the E2B sandbox; a missing
// one is not an error.
func (p *Provider) Destroy(ctx context.Context, h provider.Handle) error {
	p.mu.Lock()
	if e := p.agents[h.SandboxID]; e != nil {
		e.c.Close()
		delete(p.agents, h.SandboxID)
	}
	p.mu.Unlock()
	ids, err := p.runtimeIDs(ctx, h)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := p.api.killSandbox(ctx, id); err != nil && !errs.Is(err, errs.NotFound) {
			return err
		}
	}
	return nil
}

// List implements provider.Provider: this server's running E2B sandboxes.
func (p *Provider) List(ctx context.Context) ([]provider.Handle, error) {
	list, err := p.api.listSandboxes(ctx, p.ownMeta(""))
	if err != nil {
		return nil, err
	}
	out := make([]provider.Handle, 0, len(list))
	for _, s := range list {
		if !p.owns(s, "") || s.Metadata[metaSandbox] == "" {
			continue
		}
		domain := p.cfg.Domain
		if s.Domain != nil && *s.Domain != "" {
			domain = *s.Domain
		}
		out = append(out, provider.Handle{
			Provider:  p.cfg.Name,
			SandboxID: s.Metadata[metaSandbox],
			RuntimeID: s.SandboxID,
			Data:      map[string]string{"domain": domain, "agent_port": itoa(agentPort)},
		})
	}
	return out, nil
}

// Agent implements provider.Provider. Clients are cached; each use also
// refreshes the sandbox's E2B timeout when a quarter of it has passed, so
// a sandbox in use is not killed by E2B under the service's own TTL.
func (p *Provider) Agent(ctx context.Context, h provider.Handle) (*agent.Client, error) {
	if h.RuntimeID == "" {
		return nil, errs.New(errs.NotFound, "sandbox %s has no E2B sandbox id", h.SandboxID)
	}
	p.mu.Lock()
	e := p.agents[h.SandboxID]
	if e != nil && e.runtimeID != h.RuntimeID {
		e.c.Close()
		e = nil
	}
	if e == nil {
		domain := h.Data["domain"]
		if domain == "" {
			domain = p.cfg.Domain
		}
		// A handle adopted after a restart: its refresh is due now.
		e = &agentEntry{c: p.newAgentClient(h.SandboxID, h.RuntimeID, domain), runtimeID: h.RuntimeID}
		p.agents[h.SandboxID] = e
	}
	due := time.Since(e.refreshed) > p.cfg.Timeout/4
	if due {
		e.refreshed = time.Now()
	}
	c := e.c
	p.mu.Unlock()
	if due {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := p.api.setTimeout(rctx, h.RuntimeID, int(p.cfg.Timeout/time.Second))
		cancel()
		if errs.Is(err, errs.NotFound) {
			p.mu.Lock()
			if p.agents[h.SandboxID] == e {
				delete(p.agents, h.SandboxID)
			}
			p.mu.Unlock()
			c.Close()
			return nil, errs.Wrap(errs.NotFound, err, "E2B sandbox %s is gone", h.RuntimeID)
		}
		if err != nil {
			p.log.Warn("refresh E2B sandbox timeout", "sandbox_id", h.SandboxID, "e2b_sandbox", h.RuntimeID, "err", err)
		}
	}
	return c, nil
}
