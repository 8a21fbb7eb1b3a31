package tracing

import (
	"context"

	"github.com/stacyvm/stacyvm/internal/provider"
)

// Provider wraps p so its Create and Destroy are spans ("provider.create",
// "provider.destroy") under the caller's span. The wrapper implements
// exactly the optional interfaces p implements (StatsReporter, LogReader,
// HostFS): the service discovers features by type assertion, so a wrapper
// must neither hide nor invent one.
func (t *Tracing) Provider(p provider.Provider) provider.Provider {
	base := &tracedProvider{Provider: p, t: t}
	s, hasS := p.(provider.StatsReporter)
	l, hasL := p.(provider.LogReader)
	h, hasH := p.(provider.HostFS)
	switch {
	case hasS && hasL && hasH:
		return struct {
			*tracedProvider
			provider.StatsReporter
			provider.LogReader
			provider.HostFS
		}{base, s, l, h}
	case hasS && hasL:
		return struct {
			*tracedProvider
			provider.StatsReporter
			provider.LogReader
		}{base, s, l}
	case hasS && hasH:
		return struct {
			*tracedProvider
			provider.StatsReporter
			provider.HostFS
		}{base, s, h}
	case hasL && hasH:
		return struct {
			*tracedProvider
			provider.LogReader
			provider.HostFS
		}{base, l, h}
	case hasS:
		return struct {
			*tracedProvider
			provider.StatsReporter
		}{base, s}
	case hasL:
		return struct {
			*tracedProvider
			provider.LogReader
		}{base, l}
	case hasH:
		return struct {
			*tracedProvider
			provider.HostFS
		}{base, h}
	}
	return base
}

// tracedProvider is the provider with spans around the runtime-changing
// calls. Inspect, List, Agent and Health stay untraced: reconcile and the
// health cache call them in the background every few seconds.
type tracedProvider struct {
	provider.Provider
	t *Tracing
}

func (p *tracedProvider) Create(ctx context.Context, spec provider.Spec) (provider.Handle, error) {
	ctx, span := p.t.start(ctx, "provider.create", AttrProvider.String(p.Name()), AttrSandboxID.String(spec.SandboxID))
	h, err := p.Provider.Create(ctx, spec)
	end(span, err)
	return h, err
}

func (p *tracedProvider) Destroy(ctx context.Context, h provider.Handle) error {
	ctx, span := p.t.start(ctx, "provider.destroy", AttrProvider.String(p.Name()), AttrSandboxID.String(h.SandboxID))
	err := p.Provider.Destroy(ctx, h)
	end(span, err)
	return err
}

var _ provider.Provider = (*tracedProvider)(nil)
