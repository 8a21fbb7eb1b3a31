package sandbox

import (
	"context"
	"time"

	"github.com/stacyvm/stacyvm/internal/agent"
	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/store"
)

// target is a running sandbox resolved to its provider and agent.
type target struct {
	rec    *store.Sandbox
	prov   provider.Provider
	handle provider.Handle
	agent  *agent.Client
}

// reach resolves a running sandbox's agent. Sandboxes in other live states
// answer Conflict with their state.
func (s *Service) reach(ctx context.Context, id string) (*target, error) {
	rec, err := s.live(ctx, id)
	if err != nil {
		return nil, err
	}
	if State(rec.State) == StateError {
		return nil, errs.New(errs.Unavailable, "sandbox %s failed: %s; destroy it and create a new one", rec.ID, rec.Error)
	}
	if State(rec.State) != StateRunning {
		return nil, errs.New(errs.Conflict, "sandbox %s is %s, not running", rec.ID, rec.State)
	}
	h, err := handleOf(rec)
	if err != nil {
		return nil, err
	}
	p, err := s.provider(rec.Provider)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "provider %s of sandbox %s is no longer configured", rec.Provider, rec.ID)
	}
	c, err := p.Agent(ctx, h)
	if err != nil {
		return nil, s.runtimeFailed(ctx, &target{rec: rec, prov: p, handle: h}, err)
	}
	return &target{rec: rec, prov: p, handle: h, agent: c}, nil
}

// runtimeFailed turns an agent failure into the caller's error. When the
// agent is unreachable it checks whether the runtime itself is gone, and if
// so records the sandbox as failed so later calls answer at once.
func (s *Service) runtimeFailed(ctx context.Context, t *target, err error) error {
	if !errs.Is(err, errs.Unavailable) || ctx.Err() != nil {
		return err
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	st, ierr := t.prov.Inspect(ictx, t.handle)
	if ierr != nil {
		return err // the daemon itself is down: plain Unavailable
	}
	if st.State == provider.RuntimeRunning {
		return err
	}
	reason := "sandbox runtime is no longer running"
	if st.State == provider.RuntimeStopped {
		reason = "sandbox runtime exited unexpectedly"
	}
	upd, uerr := s.store.Sandboxes().Update(ictx, t.rec.ID, func(sb *store.Sandbox) error {
		if err := checkTransition(sb.ID, State(sb.State), StateError); err != nil {
			return err
		}
		sb.State = string(StateError)
		sb.Error = reason
		return nil
	})
	if uerr == nil {
		s.emit(events.SandboxError, upd, reason)
	}
	if uerr != nil {
		s.log.Warn("recording runtime failure", "sandbox_id", t.rec.ID, "err", uerr)
	}
	s.log.Warn("sandbox runtime failed", "sandbox_id", t.rec.ID, "state", st.State, "detail", st.Detail)
	return errs.Wrap(errs.Unavailable, err, "%s (sandbox %s)", reason, t.rec.ID)
}
