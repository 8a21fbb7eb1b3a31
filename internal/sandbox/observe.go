package sandbox

import (
	"context"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// Logs returns the last lines of a sandbox's console log (the agent's own
// log), or an empty list for providers that keep none.
func (s *Service) Logs(ctx context.Context, id string, lines int) ([]string, error) {
	if lines <= 0 || lines > 10000 {
		lines = 100
	}
	rec, err := s.live(ctx, id)
	if err != nil {
		return nil, err
	}
	p, err := s.provider(rec.Provider)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "provider %s is no longer configured", rec.Provider)
	}
	lr, ok := p.(provider.LogReader)
	if !ok || len(rec.Handle) == 0 {
		return []string{}, nil
	}
	h, err := handleOf(rec)
	if err != nil {
		return nil, err
	}
	out, err := lr.Logs(ctx, h, lines)
	if out == nil {
		out = []string{}
	}
	return out, err
}

// Stats reads a sandbox's resource usage where the provider supports it.
func (s *Service) Stats(ctx context.Context, id string) (Stats, error) {
	t, err := s.reach(ctx, id)
	if err != nil {
		return Stats{}, err
	}
	sr, ok := t.prov.(provider.StatsReporter)
	if !ok {
		return Stats{Supported: false}, nil
	}
	st, err := sr.Stats(ctx, t.handle)
	if err != nil {
		return Stats{}, s.runtimeFailed(ctx, t, err)
	}
	return Stats{Supported: true, Stats: st}, nil
}
