package sandbox

import (
	"context"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Prune destroys every live sandbox whose ttl has passed and returns how many
// it destroyed. Sandboxes whose runtime cannot be reached right now are left
// for the next pass.
func (s *Service) Prune(ctx context.Context) (int, error) {
	return s.prune(ctx, false)
}

// prune destroys expired sandboxes; the reaper also includes warm pool
// members, which callers never see.
func (s *Service) prune(ctx context.Context, withWarm bool) (int, error) {
	now := s.now().UTC()
	states := []string{string(StateRunning), string(StatePaused), string(StateStopped), string(StateUnhealthy), string(StateExpired), string(StateError)}
	if withWarm {
		states = append(states, string(StateWarm))
	}
	tenant, err := scopeFilter(ctx, "") // a caller prunes only its own tenant
	if err != nil {
		return 0, err
	}
	recs, err := s.store.Sandboxes().List(ctx, store.SandboxFilter{
		States:        states,
		ExpiredBefore: now,
		TenantID:      tenant,
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rec := range recs {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		// Record the expiry first: if destroying fails, the state says why.
		if State(rec.State) != StateExpired && CanTransition(State(rec.State), StateExpired) {
			if upd, err := s.store.Sandboxes().Update(ctx, rec.ID, func(sb *store.Sandbox) error {
				if err := checkTransition(sb.ID, State(sb.State), StateExpired); err != nil {
					return err
				}
				sb.State = string(StateExpired)
				return nil
			}); err == nil {
				rec = upd
				s.emit(events.SandboxExpired, rec, "ttl passed")
			}
		}
		switch err := s.destroy(ctx, rec, "expired"); {
		case err == nil:
			n++
		case errs.Is(err, errs.NotFound):
		default:
			s.log.Warn("reaping expired sandbox failed; will retry", "sandbox_id", rec.ID, "err", err)
		}
	}
	return n, nil
}

func (s *Service) reapLoop(ctx context.Context) {
	t := time.NewTicker(s.d.ReapInterval)
	defer t.Stop()
	lastSweep := s.now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// The reconcile sweep removes what a failed runtime call left behind
		// (e.g. a container created just as the engine went away).
		if s.d.ReconcileInterval > 0 && s.now().Sub(lastSweep) >= s.d.ReconcileInterval {
			lastSweep = s.now()
			if _, err := s.reconcile(ctx, s.d.CreateTimeout); err != nil && ctx.Err() == nil {
				s.log.Warn("reconcile sweep failed", "err", err)
			}
		}
		if n, err := s.prune(ctx, true); err != nil && ctx.Err() == nil {
			s.log.Warn("reaper pass failed", "err", err)
		} else if n > 0 {
			s.log.Info("reaped expired sandboxes", "count", n)
		}
		if s.d.DestroyedRetention > 0 {
			if n, err := s.store.Sandboxes().Purge(ctx, s.now().UTC().Add(-s.d.DestroyedRetention)); err != nil && ctx.Err() == nil {
				s.log.Warn("purging destroyed records failed", "err", err)
			} else if n > 0 {
				s.log.Info("purged destroyed sandbox records", "count", n)
			}
		}
	}
}
