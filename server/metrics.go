package server

import (
	"net/http"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// DefaultMetricsTopTenants is how many tenants get a label of their own
// in the per-tenant metrics when Options.MetricsTopTenants is 0.
const DefaultMetricsTopTenants = 20

// Values of the tenant label besides tenant ids.
const (
	// otherTenants labels every tenant past the first MetricsTopTenants.
	otherTenants = "other"
	// noTenant labels requests refused before their tenant was known (no
	// or a bad token, an unregistered tenant): an empty value, which
	// Prometheus treats as no label at all.
	noTenant = ""
)

// metrics are the server's Prometheus metrics.
//
// Labels are bounded by construction: tool names come from the tools the
// server was built with, reasons and outcomes from fixed lists, and the
// tenant label takes at most Options.MetricsTopTenants tenant ids (the
// first tenants served since the process started, see tenantLabels) plus
// "other" and "" (no tenant), however many tenants call. With 10,000
// tenants a label per tenant would explode cardinality, and metrics are
// often less protected than data: set Options.NoTenantLabels to keep
// every tenant id out of them.
type metrics struct {
	reg      *prometheus.Registry
	admitted prometheus.Counter
	refused  *prometheus.CounterVec
	calls    *prometheus.CounterVec
	degraded prometheus.Counter

	requests     *prometheus.CounterVec   // tenant, outcome
	duration     *prometheus.HistogramVec // tenant
	limited      *prometheus.CounterVec   // limit, tenant
	toolDuration *prometheus.HistogramVec // tool

	tenants  *tenantLabels
	noTenant *tenantSeries
}

// Latency buckets (seconds) of requests and tool calls: from a cached
// request path (well under a millisecond) to a long tool call.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// limitReasons are the refusal reasons that count as rate-limit
// rejections, by the limit label they get; limitNames are those labels.
var (
	limitReasons = [...]string{"rate_limited_tenant", "rate_limited_user", "concurrency", "body_reads"}
	limitNames   = [...]string{"tenant", "user", "concurrency", "body_reads"}
)

// newMetrics builds the metrics; topTenants tenants get a label of their
// own (0: none does).
func newMetrics(topTenants int) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		admitted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantmcp_requests_admitted_total",
			Help: "MCP requests that passed authentication, tenant checks and limits.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantmcp_requests_refused_total",
			Help: "MCP requests refused by the request path, by reason.",
		}, []string{"reason"}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantmcp_tool_calls_total",
			Help: "Tool calls by tool and outcome (ok, error).",
		}, []string{"tool", "outcome"}),
		degraded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tenantmcp_ratelimit_degraded_total",
			Help: "Rate-limit checks answered without the shared limiter (Redis unreachable), per the configured fail-open/fail-closed policy.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantmcp_requests_total",
			Help: `MCP requests by tenant and outcome (ok, error, refused). tenant is a tenant id for the first server.metrics_top_tenants tenants served since the process started, "other" for the rest, and empty for requests refused before their tenant was known.`,
		}, []string{"tenant", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantmcp_request_duration_seconds",
			Help:    "Time to serve or refuse an MCP request, by tenant (labelled as in tenantmcp_requests_total).",
			Buckets: latencyBuckets,
		}, []string{"tenant"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tenantmcp_ratelimit_rejected_total",
			Help: "Requests refused with 429 by a limit (tenant or user rate, tenant concurrency, tenant bodies arriving), by limit and tenant (labelled as in tenantmcp_requests_total).",
		}, []string{"limit", "tenant"}),
		toolDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tenantmcp_tool_call_duration_seconds",
			Help:    "Time a tool's handler took, by tool.",
			Buckets: latencyBuckets,
		}, []string{"tool"}),
	}
	m.reg.MustRegister(m.admitted, m.refused, m.calls, m.degraded, m.requests, m.duration, m.limited, m.toolDuration,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.tenants = newTenantLabels(topTenants, m.series)
	// Only refusals have no tenant: served requests always have one.
	m.noTenant = &tenantSeries{
		refused: m.requests.WithLabelValues(noTenant, audit.OutcomeRefused),
		latency: m.duration.WithLabelValues(noTenant),
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// tenantSeries are one tenant label's metrics, resolved once so that a
// request costs atomic adds, not label lookups.
type tenantSeries struct {
	ok, failed, refused prometheus.Counter
	latency             prometheus.Observer
	limited             [len(limitReasons)]prometheus.Counter
}

func (m *metrics) series(label string) *tenantSeries {
	ts := &tenantSeries{
		ok:      m.requests.WithLabelValues(label, audit.OutcomeOK),
		failed:  m.requests.WithLabelValues(label, audit.OutcomeError),
		refused: m.requests.WithLabelValues(label, audit.OutcomeRefused),
		latency: m.duration.WithLabelValues(label),
	}
	for i, name := range limitNames {
		ts.limited[i] = m.limited.WithLabelValues(name, label)
	}
	return ts
}

// observe counts one finished request of the tenant (nil: not known,
// which only a refusal can be).
func (m *metrics) observe(t *registry.Tenant, outcome, refusal string, seconds float64) {
	if t == nil {
		m.noTenant.refused.Inc()
		m.noTenant.latency.Observe(seconds)
		return
	}
	ts := m.tenants.series(t.ID)
	switch outcome {
	case audit.OutcomeOK:
		ts.ok.Inc()
	case audit.OutcomeRefused:
		ts.refused.Inc()
		for i, reason := range limitReasons {
			if refusal == reason {
				ts.limited[i].Inc()
			}
		}
	default:
		ts.failed.Inc()
	}
	ts.latency.Observe(seconds)
}

// tenantLabels gives the first max tenants it is asked about a label of
// their own (their tenant id) and every later one the label "other", until
// the process exits. The set is bounded by construction and a tenant's
// series never change label, so counters stay monotonic; the price is that
// which tenants are labelled depends on who called first after a start
// (each replica has its own), not on who calls most. Sums over the tenant
// label are exact either way.
//
// A lookup is an atomic load and a map read: the mutex is taken only to
// add one of the first max tenants.
type tenantLabels struct {
	max    int
	labels atomic.Pointer[map[tenant.ID]*tenantSeries] // copied on write
	full   atomic.Bool
	mu     sync.Mutex
	other  *tenantSeries
	build  func(label string) *tenantSeries
}

func newTenantLabels(max int, build func(string) *tenantSeries) *tenantLabels {
	l := &tenantLabels{max: max, other: build(otherTenants), build: build}
	empty := map[tenant.ID]*tenantSeries{}
	l.labels.Store(&empty)
	l.full.Store(max <= 0)
	return l
}

// series returns the metrics of the tenant's label.
func (l *tenantLabels) series(id tenant.ID) *tenantSeries {
	if ts, ok := (*l.labels.Load())[id]; ok {
		return ts
	}
	if l.full.Load() {
		return l.other
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	cur := *l.labels.Load()
	if ts, ok := cur[id]; ok {
		return ts
	}
	if len(cur) >= l.max {
		l.full.Store(true)
		return l.other
	}
	next := make(map[tenant.ID]*tenantSeries, len(cur)+1)
	for k, v := range cur {
		next[k] = v
	}
	ts := l.build(string(id))
	next[id] = ts
	l.labels.Store(&next)
	return ts
}

// registryStats and tokenCacheStats are what *registry.Registry and
// *auth.Verifier report about their caches; other implementations of
// Resolver and Verifier may report nothing.
type (
	registryStats   interface{ Stats() registry.Stats }
	tokenCacheStats interface{ CacheStats() auth.CacheStats }
)

// cacheCollector exports the registry's and the token verifier's cache
// counters, read at scrape time. Hit rates are for PromQL, e.g.
// rate(tenantmcp_token_cache_hits_total[5m]) / (rate(tenantmcp_token_cache_hits_total[5m]) + rate(tenantmcp_token_cache_misses_total[5m])).
type cacheCollector struct {
	reg registryStats   // nil: not reported
	tok tokenCacheStats // nil: not reported
}

var (
	registryHitsDesc      = prometheus.NewDesc("tenantmcp_registry_cache_hits_total", "Tenant lookups answered from the registry cache with a record.", nil, nil)
	registryNegHitsDesc   = prometheus.NewDesc("tenantmcp_registry_cache_negative_hits_total", "Tenant lookups answered from the registry cache with \"not registered\".", nil, nil)
	registryMissesDesc    = prometheus.NewDesc("tenantmcp_registry_cache_misses_total", "Tenant lookups that went to the registry's store.", nil, nil)
	registryEvictionsDesc = prometheus.NewDesc("tenantmcp_registry_cache_evictions_total", "Registry cache entries dropped because the cache was full (registry.cache_size).", nil, nil)
	registryEntriesDesc   = prometheus.NewDesc("tenantmcp_registry_cache_entries", "Records and \"not registered\" answers in the registry cache.", nil, nil)
	tokenHitsDesc         = prometheus.NewDesc("tenantmcp_token_cache_hits_total", "Bearer tokens answered from the verified-token cache.", nil, nil)
	tokenMissesDesc       = prometheus.NewDesc("tenantmcp_token_cache_misses_total", "Bearer tokens whose signature was checked (not cached, or no longer usable).", nil, nil)
	tokenEntriesDesc      = prometheus.NewDesc("tenantmcp_token_cache_entries", "Verified tokens cached (auth.token_cache_size).", nil, nil)
)

func (c cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	if c.reg != nil {
		ch <- registryHitsDesc
		ch <- registryNegHitsDesc
		ch <- registryMissesDesc
		ch <- registryEvictionsDesc
		ch <- registryEntriesDesc
	}
	if c.tok != nil {
		ch <- tokenHitsDesc
		ch <- tokenMissesDesc
		ch <- tokenEntriesDesc
	}
}

func (c cacheCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v int) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v))
	}
	if c.reg != nil {
		st := c.reg.Stats()
		counter(registryHitsDesc, st.Hits)
		counter(registryNegHitsDesc, st.NegativeHits)
		counter(registryMissesDesc, st.Misses)
		counter(registryEvictionsDesc, st.Evictions)
		gauge(registryEntriesDesc, st.Entries)
	}
	if c.tok != nil {
		st := c.tok.CacheStats()
		counter(tokenHitsDesc, st.Hits)
		counter(tokenMissesDesc, st.Misses)
		gauge(tokenEntriesDesc, st.Entries)
	}
}

// newCacheCollector reports the caches of the resolver and verifier that
// have counters; nil if neither has.
func newCacheCollector(res Resolver, v Verifier) prometheus.Collector {
	var c cacheCollector
	c.reg, _ = res.(registryStats)
	if v != nil {
		c.tok, _ = v.(tokenCacheStats)
	}
	if c.reg == nil && c.tok == nil {
		return nil
	}
	return c
}
