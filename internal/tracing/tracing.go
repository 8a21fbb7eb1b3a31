// Package tracing is StacyVM's optional OpenTelemetry tracing: a tracer
// provider exporting over OTLP/HTTP, one server span per API request
// (continuing a W3C traceparent), and child spans around the sandbox
// service's create, exec and destroy and the providers' create and destroy.
// Nothing here runs unless tracing.enabled is set: internal/app then builds
// a Tracing and wraps the handler, the service and the providers; otherwise
// none of them is wrapped and no tracer exists.
//
// Spans carry route templates, status codes, request and sandbox ids,
// provider names and error classes — never headers, bodies, commands,
// environment values or error texts (they may hold user data or secrets).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/stacyvm/stacyvm/internal/config"
	"github.com/stacyvm/stacyvm/internal/errs"
)

// ScopeName is the instrumentation scope of every StacyVM span.
const ScopeName = "github.com/stacyvm/stacyvm"

// Span attribute keys of StacyVM's own facts (the HTTP ones follow the
// OpenTelemetry semantic conventions).
const (
	AttrRequestID = attribute.Key("stacyvm.request_id")
	AttrSandboxID = attribute.Key("stacyvm.sandbox_id")
	AttrProvider  = attribute.Key("stacyvm.provider")
	AttrErrorType = attribute.Key("error.type")
)

// Tracing owns the tracer provider and its exporter. Its methods are safe
// for concurrent use.
type Tracing struct {
	tp     *sdktrace.TracerProvider
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
}

// Options are the process facts New puts on the resource.
type Options struct {
	Version  string // service.version
	ServerID string // service.instance.id
}

// New builds the exporter and tracer provider for cfg, which must be
// enabled and valid (config.Validate). Spans are batched and exported in
// the background; an unreachable collector costs dropped spans, never
// requests. Call Shutdown to flush.
func New(ctx context.Context, cfg config.TracingConfig, o Options) (*Tracing, error) {
	if !cfg.Enabled {
		return nil, errs.New(errs.Invalid, "tracing: not enabled")
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || u.Host == "" {
		return nil, errs.New(errs.Invalid, "tracing.endpoint: %q is not a URL", cfg.Endpoint)
	}
	headers, err := cfg.HeaderMap()
	if err != nil {
		return nil, errs.Wrap(errs.Invalid, err, "tracing.headers")
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{
		otlptracehttp.WithEndpoint(u.Host),
		otlptracehttp.WithURLPath(path),
		otlptracehttp.WithTimeout(cfg.Timeout.Std()),
	}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if len(headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(headers))
	}
	// New does not connect: the first export does.
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: exporter: %w", err)
	}
	attrs := []attribute.KeyValue{
		attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", o.Version),
	}
	if o.ServerID != "" {
		attrs = append(attrs, attribute.String("service.instance.id", o.ServerID))
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(2*time.Second)),
		sdktrace.WithResource(resource.NewSchemaless(attrs...)),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	return &Tracing{
		tp:     tp,
		tracer: tp.Tracer(ScopeName),
		prop:   propagation.TraceContext{},
	}, nil
}

// Shutdown exports the spans still buffered and stops the exporter; ctx
// bounds the flush.
func (t *Tracing) Shutdown(ctx context.Context) error {
	return t.tp.Shutdown(ctx)
}

// start begins an internal child span.
func (t *Tracing) start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// end closes span, marking it failed with err's class (never its text).
func end(span trace.Span, err error) {
	if err != nil {
		class := strings.ToLower(errs.ClassOf(err).Code())
		if errors.Is(err, context.Canceled) {
			class = "canceled"
		}
		span.SetAttributes(AttrErrorType.String(class))
		span.SetStatus(codes.Error, class)
	}
	span.End()
}
