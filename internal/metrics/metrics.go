// Package metrics is StacyVM's Prometheus instrumentation: request latency
// by route pattern, spawn and exec latency (as a sandbox.Observer), store
// latency (an instrumented store.Store), and collectors that read sandbox
// counts, provider health and warm pool depth at scrape time. Every family
// is prefixed stacyvm_; labels come from closed sets (route patterns, states,
// provider names, error classes), never from raw request data.
package metrics

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stacyvm/stacyvm/internal/events"
	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
)

// Namespace prefixes every metric family.
const Namespace = "stacyvm"

// ServiceView is what the scrape-time collectors read from the sandbox
// service (cached provider health, warm pool fill).
type ServiceView interface {
	Providers(ctx context.Context) ([]sandbox.ProviderInfo, error)
	WarmPools(ctx context.Context) ([]sandbox.WarmPoolInfo, error)
}

// Metrics owns a private registry (no global state) and the instruments the
// rest of the server reports into. It is safe for concurrent use.
type Metrics struct {
	reg      *prometheus.Registry
	httpDur  *prometheus.HistogramVec
	spawnDur *prometheus.HistogramVec
	execDur  *prometheus.HistogramVec
	storeDur *prometheus.HistogramVec
}

// New creates the registry with the Go and process collectors and the
// request, spawn, exec and store histograms. Attach the scrape-time
// collectors with Watch once the store and service exist.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.httpDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "http", Name: "request_duration_seconds",
		Help:    "HTTP request latency by route pattern, method and status code.",
		Buckets: prometheus.DefBuckets,
	}, []string{"route", "method", "code"})
	m.spawnDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "sandbox", Name: "spawn_duration_seconds",
		Help:    "Sandbox create latency by provider, source (cold|warm) and outcome.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"provider", "source", "outcome"})
	m.execDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "exec", Name: "duration_seconds",
		Help:    "Exec latency (request to exit) by provider and outcome (ok|timeout|error class).",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 3600},
	}, []string{"provider", "outcome"})
	m.storeDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Subsystem: "store", Name: "operation_duration_seconds",
		Help:    "Store call latency by operation and outcome.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
	}, []string{"op", "outcome"})
	m.reg.MustRegister(m.httpDur, m.spawnDur, m.execDur, m.storeDur,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: Namespace}))
	return m
}

// Watch registers the collectors that read st (sandbox counts by state and
// provider), svc (provider health, warm pool depth) and bus (events
// published, live subscribers) at every scrape. Scrape-time reads derive
// their deadline from ctx (the server's lifetime).
func (m *Metrics) Watch(ctx context.Context, st store.Store, svc ServiceView, providers []string, bus *events.Bus) {
	m.reg.MustRegister(newStateCollector(ctx, st, providers), newProviderCollector(ctx, svc))
	if bus != nil {
		m.reg.MustRegister(
			prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: Namespace, Subsystem: "events", Name: "published_total",
				Help: "Lifecycle events published since start."}, func() float64 { return float64(bus.LastID()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: Namespace, Subsystem: "events", Name: "subscribers",
				Help: "Open /events streams."}, func() float64 { return float64(bus.Subscribers()) }))
	}
}

// Registry exposes the registry (tests, extra collectors).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveHTTP records one request. route is the matched pattern
// ("/api/v1/sandboxes/{id}") or "unmatched".
func (m *Metrics) ObserveHTTP(method, route string, status int, d time.Duration) {
	m.httpDur.WithLabelValues(route, method, strconv.Itoa(status)).Observe(d.Seconds())
}

// SpawnObserved implements sandbox.Observer.
func (m *Metrics) SpawnObserved(provider, source, outcome string, d time.Duration) {
	m.spawnDur.WithLabelValues(provider, source, outcome).Observe(d.Seconds())
}

// ExecObserved implements sandbox.Observer.
func (m *Metrics) ExecObserved(provider, outcome string, d time.Duration) {
	m.execDur.WithLabelValues(provider, outcome).Observe(d.Seconds())
}

var _ sandbox.Observer = (*Metrics)(nil)
