package sandbox

import (
	"time"

	"context"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Extend sets a sandbox's expiry to now + ttl, capped by the maximum ttl.
func (s *Service) Extend(ctx context.Context, id string, ttl time.Duration) (*Sandbox, error) {
	if ttl <= 0 {
		return nil, errs.New(errs.Invalid, "ttl must be positive")
	}
	if s.d.MaxTTL > 0 && ttl > s.d.MaxTTL {
		return nil, errs.New(errs.Limit, "ttl %s exceeds the maximum of %s", ttl, s.d.MaxTTL)
	}
	cur, err := s.live(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.checkOwnerTTL(ctx, cur.OwnerID, ttl); err != nil {
		return nil, err
	}
	rec, err := s.store.Sandboxes().Update(ctx, id, func(sb *store.Sandbox) error {
		switch State(sb.State) {
		case StateDestroyed:
			return errs.New(errs.NotFound, "sandbox %s not found (destroyed)", sb.ID)
		case StateExpired, StateError:
			return errs.New(errs.Conflict, "sandbox %s is %s and cannot be extended", sb.ID, sb.State)
		}
		sb.ExpiresAt = s.now().UTC().Add(ttl)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return toView(rec), nil
}
