package sandbox

import (
	"context"

	"github.com/stacyvm/stacyvm/internal/store"
)

// Get returns a sandbox that is not destroyed (NotFound otherwise).
func (s *Service) Get(ctx context.Context, id string) (*Sandbox, error) {
	rec, err := s.live(ctx, id)
	if err != nil {
		return nil, err
	}
	return toView(rec), nil
}

// List returns sandboxes that are not destroyed, newest first.
func (s *Service) List(ctx context.Context, f ListFilter) ([]*Sandbox, error) {
	tenant, err := scopeFilter(ctx, f.TenantID) // tenancy.go: only the caller's tenant
	if err != nil {
		return nil, err
	}
	sf := store.SandboxFilter{
		OwnerID:  f.OwnerID,
		TenantID: tenant,
		Labels:   f.Labels,
		Limit:    f.Limit,
		Cursor:   f.Cursor,
		States:   visibleStates(),
	}
	if f.State != "" {
		if f.State == StateDestroyed || f.State == StateWarm {
			return []*Sandbox{}, nil
		}
		sf.States = []string{string(f.State)}
	}
	recs, err := s.store.Sandboxes().List(ctx, sf)
	if err != nil {
		return nil, err
	}
	out := make([]*Sandbox, 0, len(recs))
	for _, r := range recs {
		out = append(out, toView(r))
	}
	return out, nil
}
