package sandbox

import (
	"context"
	"errors"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Destroy removes a sandbox's runtime, then records it destroyed. If the
// runtime cannot be removed (its daemon is down) the record is unchanged and
// the error (Unavailable) is returned, so state never claims more than is
// true. A sandbox still being created is marked destroyed at once; its
// creator then removes the runtime it made.
func (s *Service) Destroy(ctx context.Context, id string) error {
	rec, err := s.live(ctx, id)
	if err != nil {
		return err
	}
	return s.destroy(ctx, rec, "")
}

func (s *Service) destroy(ctx context.Context, rec *store.Sandbox, reason string) error {
	if len(rec.Handle) > 0 {
		h, err := handleOf(rec)
		if err != nil {
			return err
		}
		p, err := s.provider(rec.Provider)
		if err != nil {
			return errs.Wrap(errs.Unavailable, err, "provider %s of sandbox %s is no longer configured", rec.Provider, rec.ID)
		}
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = p.Destroy(dctx, h)
		cancel()
		if err != nil {
			return err
		}
	}
	upd, err := s.store.Sandboxes().Update(context.WithoutCancel(ctx), rec.ID, func(sb *store.Sandbox) error {
		if State(sb.State) == StateDestroyed {
			// Someone else (a concurrent destroy, the reconcile sweep)
			// recorded it first; the runtime is gone either way.
			return errAlreadyDestroyed
		}
		sb.State = string(StateDestroyed)
		sb.DestroyedAt = s.now().UTC()
		if reason != "" {
			sb.Error = reason
		}
		return nil
	})
	switch {
	case err == nil:
		s.emit(events.SandboxDestroyed, upd, reason)
		s.log.Info("sandbox destroyed", "sandbox_id", rec.ID, "reason", reason)
	case errors.Is(err, errAlreadyDestroyed):
		err = nil
	}
	return err
}

// errAlreadyDestroyed aborts a destroy's record update that found the record
// already destroyed; the destroy itself succeeded.
var errAlreadyDestroyed = errors.New("already destroyed")
