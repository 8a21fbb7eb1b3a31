package sandbox

import (
	"context"
	"sync"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/provider"
)

// healthCache keeps the last health result per provider, so /providers and
// /ready never run slow live checks on the request path more than once per
// maxAge.
type healthCache struct {
	providers map[string]provider.Provider
	now       func() time.Time

	mu      sync.Mutex
	results map[string]healthResult
}

type healthResult struct {
	err       error
	latency   time.Duration
	checkedAt time.Time
}

const healthMaxAge = 10 * time.Second

func newHealthCache(ps map[string]provider.Provider, now func() time.Time) *healthCache {
	return &healthCache{providers: ps, now: now, results: map[string]healthResult{}}
}

// get returns a fresh-enough result for name, checking live when stale.
func (h *healthCache) get(ctx context.Context, name string, maxAge time.Duration) healthResult {
	h.mu.Lock()
	r, ok := h.results[name]
	h.mu.Unlock()
	if ok && h.now().Sub(r.checkedAt) < maxAge {
		return r
	}
	return h.check(ctx, name)
}

func (h *healthCache) check(ctx context.Context, name string) healthResult {
	p := h.providers[name]
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := h.now()
	err := p.Health(ctx)
	r := healthResult{err: err, latency: h.now().Sub(start), checkedAt: h.now()}
	h.mu.Lock()
	h.results[name] = r
	h.mu.Unlock()
	return r
}

func (h *healthCache) loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for name := range h.providers {
			h.check(ctx, name)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Providers describes every configured provider with its cached health.
func (s *Service) Providers(ctx context.Context) ([]ProviderInfo, error) {
	out := make([]ProviderInfo, 0, len(s.names))
	for _, name := range s.names {
		r := s.health.get(ctx, name, healthMaxAge)
		info := ProviderInfo{
			Name:         name,
			Default:      name == s.def,
			Healthy:      r.err == nil,
			LatencyMS:    r.latency.Milliseconds(),
			LastChecked:  r.checkedAt.UTC(),
			Capabilities: s.providers[name].Capabilities(),
		}
		if r.err != nil {
			info.Error = errs.Message(r.err)
		}
		out = append(out, info)
	}
	return out, nil
}

// TestProviders runs a live health check of every provider now.
func (s *Service) TestProviders(ctx context.Context) (map[string]bool, error) {
	out := make(map[string]bool, len(s.names))
	for _, name := range s.names {
		out[name] = s.health.check(ctx, name).err == nil
	}
	return out, nil
}

// Ready returns nil when the store answers and the default provider is
// healthy (cached for a few seconds).
func (s *Service) Ready(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := s.store.Ping(pctx); err != nil {
		return errs.Wrap(errs.Unavailable, err, "database unavailable")
	}
	if r := s.health.get(ctx, s.def, 5*time.Second); r.err != nil {
		return errs.Wrap(errs.Unavailable, r.err, "default provider %s is unhealthy: %s", s.def, errs.Message(r.err))
	}
	return nil
}
