package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/stacyvm/stacyvm/internal/api"
	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/provider"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/tracing"
)

// tracingFlushTimeout bounds the export of buffered spans at shutdown.
const tracingFlushTimeout = 5 * time.Second

// startTracing builds the OpenTelemetry tracer when tracing.enabled is set;
// disabled, it returns nil and a no-op stop, and nothing else is wrapped.
// stop flushes buffered spans (bounded) and must run after the HTTP server
// and the service have stopped.
func startTracing(ctx context.Context, cfg *config.Config, version, serverID string, log *slog.Logger) (*tracing.Tracing, func(), error) {
	if !cfg.Tracing.Enabled {
		return nil, func() {}, nil
	}
	tr, err := tracing.New(ctx, cfg.Tracing, tracing.Options{Version: version, ServerID: serverID})
	if err != nil {
		return nil, nil, err
	}
	log.Info("tracing enabled", "endpoint", cfg.Tracing.Endpoint, "sample_ratio", cfg.Tracing.SampleRatio,
		"service_name", cfg.Tracing.ServiceName)
	stop := func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), tracingFlushTimeout)
		defer cancel()
		if err := tr.Shutdown(sctx); err != nil {
			log.Warn("tracing: flushing spans at shutdown failed", "err", err)
		}
	}
	return tr, stop, nil
}

// traceProviders wraps each provider's create and destroy in spans.
func traceProviders(tr *tracing.Tracing, ps []provider.Provider) []provider.Provider {
	if tr == nil {
		return ps
	}
	out := make([]provider.Provider, len(ps))
	for i, p := range ps {
		out[i] = tr.Provider(p)
	}
	return out
}

// apiTracing returns the service the API calls and its request tracer:
// the audited service and no tracer when tracing is off (never a typed nil
// in the interface).
func apiTracing(tr *tracing.Tracing, svc *sandbox.Audited) (api.Service, api.RequestTracer) {
	if tr == nil {
		return svc, nil
	}
	return tr.Service(svc), tr
}
