package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics. Labels never carry tenant
// ids: with thousands of tenants that would explode cardinality (and
// metrics are often less protected than data).
type metrics struct {
	reg      *prometheus.Registry
	admitted prometheus.Counter
	refused  *prometheus.CounterVec
	calls    *prometheus.CounterVec
	degraded prometheus.Counter
}

func newMetrics() *metrics {
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
	}
	m.reg.MustRegister(m.admitted, m.refused, m.calls, m.degraded,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
