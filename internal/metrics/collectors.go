package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stacyvm/stacyvm/internal/sandbox"
	"github.com/stacyvm/stacyvm/internal/store"
)

// scrapeTimeout bounds the store and service reads of one scrape.
const scrapeTimeout = 5 * time.Second

// countedStates are the states reported by stacyvm_sandboxes (warm = pool
// members; destroyed rows are kept for the retention window).
var countedStates = []sandbox.State{
	sandbox.StateCreating, sandbox.StateWarm, sandbox.StateRunning, sandbox.StatePaused,
	sandbox.StateStopped, sandbox.StateUnhealthy, sandbox.StateExpired, sandbox.StateError,
	sandbox.StateDestroyed,
}

// stateCollector counts sandbox records by state and provider at scrape time.
type stateCollector struct {
	ctx       context.Context
	st        store.Store
	providers []string
	desc      *prometheus.Desc
	errDesc   *prometheus.Desc
}

func newStateCollector(ctx context.Context, st store.Store, providers []string) *stateCollector {
	return &stateCollector{ctx: ctx, st: st, providers: providers,
		desc: prometheus.NewDesc(Namespace+"_sandboxes", "Sandbox records by state and provider.",
			[]string{"state", "provider"}, nil),
		errDesc: prometheus.NewDesc(Namespace+"_sandboxes_scrape_error", "1 when counting sandboxes failed during this scrape.",
			nil, nil)}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc; ch <- c.errDesc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(c.ctx, scrapeTimeout)
	defer cancel()
	failed := 0.0
	for _, p := range c.providers {
		for _, s := range countedStates {
			n, err := c.st.Sandboxes().Count(ctx, store.SandboxFilter{States: []string{string(s)}, Provider: p})
			if err != nil {
				failed = 1
				continue
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), string(s), p)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.errDesc, prometheus.GaugeValue, failed)
}

// providerCollector reports cached provider health and warm pool depth.
type providerCollector struct {
	ctx                               context.Context
	svc                               ServiceView
	healthy, latency, poolReady       *prometheus.Desc
	poolTarget, poolCreating, lastChk *prometheus.Desc
}

func newProviderCollector(ctx context.Context, svc ServiceView) *providerCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_"+name, help, labels, nil)
	}
	return &providerCollector{ctx: ctx, svc: svc,
		healthy:      d("provider_healthy", "1 when the provider's last health check passed.", "provider"),
		latency:      d("provider_health_check_seconds", "Duration of the provider's last health check.", "provider"),
		lastChk:      d("provider_health_checked_timestamp_seconds", "When the provider's health was last checked (unix time).", "provider"),
		poolReady:    d("warm_pool_ready", "Warm sandboxes waiting to be claimed.", "image", "provider"),
		poolCreating: d("warm_pool_creating", "Warm sandboxes being started.", "image", "provider"),
		poolTarget:   d("warm_pool_target", "Configured warm pool size.", "image", "provider"),
	}
}

func (c *providerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.healthy, c.latency, c.lastChk, c.poolReady, c.poolCreating, c.poolTarget} {
		ch <- d
	}
}

func (c *providerCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(c.ctx, scrapeTimeout)
	defer cancel()
	if ps, err := c.svc.Providers(ctx); err == nil {
		for _, p := range ps {
			v := 0.0
			if p.Healthy {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.healthy, prometheus.GaugeValue, v, p.Name)
			ch <- prometheus.MustNewConstMetric(c.latency, prometheus.GaugeValue, float64(p.LatencyMS)/1000, p.Name)
			if !p.LastChecked.IsZero() {
				ch <- prometheus.MustNewConstMetric(c.lastChk, prometheus.GaugeValue, float64(p.LastChecked.UnixNano())/1e9, p.Name)
			}
		}
	}
	if pools, err := c.svc.WarmPools(ctx); err == nil {
		for _, p := range pools {
			ch <- prometheus.MustNewConstMetric(c.poolReady, prometheus.GaugeValue, float64(p.Ready), p.Image, p.Provider)
			ch <- prometheus.MustNewConstMetric(c.poolCreating, prometheus.GaugeValue, float64(p.Creating), p.Image, p.Provider)
			ch <- prometheus.MustNewConstMetric(c.poolTarget, prometheus.GaugeValue, float64(p.Size), p.Image, p.Provider)
		}
	}
}
