package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/stacyvm/stacyvm/internal/errs"
	"github.com/stacyvm/stacyvm/internal/events"
)

// MetricsSink is what the API needs from the metrics backend
// (internal/metrics implements it), so this package never imports
// Prometheus.
type MetricsSink interface {
	// ObserveHTTP records one request under its route pattern.
	ObserveHTTP(method, route string, status int, d time.Duration)
	// Handler serves the Prometheus exposition format.
	Handler() http.Handler
	// Snapshot returns every metric family as JSON-friendly values.
	Snapshot() (any, error)
}

// DiagnosticsFunc returns the redacted runtime facts of GET /diagnostics.
type DiagnosticsFunc func(ctx context.Context) (any, error)

// Ops are the observability dependencies of the API; nil fields make their
// routes answer 503 "not configured".
type Ops struct {
	Metrics     MetricsSink
	Events      *events.Bus
	Diagnostics DiagnosticsFunc
	// Heartbeat is the SSE keep-alive interval (default 15s).
	Heartbeat time.Duration
}

// unmatchedRoute labels requests that matched no route, so scanners cannot
// blow up the label set with random paths.
const unmatchedRoute = "unmatched"

// metrics times every request and records it under the matched route
// pattern (never the raw path: ids would make unbounded label values). It
// runs inside requestID, so the route set by authorize is visible after the
// handler returns.
func (s *server) metrics(next http.Handler) http.Handler {
	if s.ops.Metrics == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		route := unmatchedRoute
		if _, p, ok := strings.Cut(infoFrom(r.Context()).route, " "); ok && p != "" {
			route = p
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		s.ops.Metrics.ObserveHTTP(r.Method, route, status, time.Since(start))
	})
}

func errNotConfigured(what string) error {
	return errs.New(errs.Unavailable, "%s is not configured on this server", what)
}

// prometheusMetrics serves GET /metrics/prometheus.
func (s *server) prometheusMetrics(w http.ResponseWriter, r *http.Request) error {
	if s.ops.Metrics == nil {
		return errNotConfigured("metrics")
	}
	s.ops.Metrics.Handler().ServeHTTP(w, r)
	return nil
}

// jsonMetrics serves GET /metrics: the same families as JSON.
func (s *server) jsonMetrics(w http.ResponseWriter, _ *http.Request) error {
	if s.ops.Metrics == nil {
		return errNotConfigured("metrics")
	}
	snap, err := s.ops.Metrics.Snapshot()
	if err != nil {
		return errs.Wrap(errs.Internal, err, "gathering metrics failed")
	}
	writeJSON(w, http.StatusOK, snap)
	return nil
}
