package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/stacyvm/stacyvm/internal/api"
)

// Wrap implements api.RequestTracer: one server span per request, a child
// of the caller's W3C traceparent when it sent one. The span is named after
// the matched route template ("GET /api/v1/sandboxes/{id}"; only the method
// for unmatched paths, so names stay a closed set) and carries the method,
// route, status code, request id and sandbox id. It never records headers,
// the raw path, the query or bodies.
func (t *Tracing) Wrap(next http.Handler, facts func(*http.Request) api.RequestFacts) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method,
			trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r.WithContext(ctx))

		f := facts(r)
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		attrs := []attribute.KeyValue{attribute.Int("http.response.status_code", status)}
		if f.Route != "" {
			span.SetName(f.Route)
			attrs = append(attrs, attribute.String("http.route", f.Path))
		}
		if f.RequestID != "" {
			attrs = append(attrs, AttrRequestID.String(f.RequestID))
		}
		if f.SandboxID != "" {
			attrs = append(attrs, AttrSandboxID.String(f.SandboxID))
		}
		span.SetAttributes(attrs...)
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// statusWriter records the response status. Flush and Unwrap keep
// streaming and WebSocket upgrades (http.ResponseController) working.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// Flush implements http.Flusher.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	_ api.RequestTracer = (*Tracing)(nil)
	_ http.Flusher      = (*statusWriter)(nil)
)
