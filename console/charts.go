package console

import (
	"errors"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// chartRanges are the time ranges the charts page offers.
var chartRanges = []struct {
	Value string
	D     time.Duration
}{{"1h", time.Hour}, {"6h", 6 * time.Hour}, {"24h", 24 * time.Hour}}

// activeListed is how many recently active tenants the charts index lists.
const activeListed = 20

func (c *Console) chartRoutes(mux *http.ServeMux) {
	mux.Handle("GET /console/charts", c.admin(c.chartIndex))
	mux.Handle("GET /console/charts/{id}", c.admin(c.tenantCharts))
}

type activeRow struct {
	ID               tenant.ID
	Requests, Refuse uint64
	Spark            template.HTML
}

type chartIndexData struct {
	Configured bool
	Tenant     string
	Problems   []string
	Candidates []*registry.Tenant
	Active     []activeRow
}

// chartIndex picks a tenant: by the form (internal or external id), or
// from the tenants most recently active on this replica.
func (c *Console) chartIndex(w http.ResponseWriter, r *http.Request, s *session) {
	d := chartIndexData{Configured: c.o.Charts != nil, Tenant: r.URL.Query().Get("tenant")}
	if d.Configured && d.Tenant != "" {
		t, cands, err := c.findTenant(r.Context(), s, d.Tenant)
		switch {
		case errors.Is(err, errNoSuchTenant):
			d.Problems, d.Candidates = []string{fmt.Sprintf("tenant: no tenant has the id or external id %q", d.Tenant)}, cands
		case err != nil:
			if !c.callerError(w, r, s, err, &d.Problems) {
				return
			}
		default:
			http.Redirect(w, r, "/console/charts/"+url.PathEscape(string(t.ID)), http.StatusSeeOther)
			return
		}
	}
	if d.Configured {
		for _, id := range c.o.Charts.HistoryTenants(activeListed) {
			sum := c.o.Charts.HistorySummary(id, sparkPoints)
			row := activeRow{ID: id, Requests: sum.TotalRequests, Refuse: sum.TotalRefused}
			row.Spark = sparkline(NewActivity(c.o.Charts).TenantActivity(r.Context(), []tenant.ID{id})[id])
			d.Active = append(d.Active, row)
		}
	}
	status := http.StatusOK
	if len(d.Problems) > 0 {
		status = http.StatusUnprocessableEntity
	}
	c.render(w, r, s, status, "charts", "Charts", d)
}

// chartRow is one step of the data table.
type chartRow struct {
	server.HistoryPoint
	ByReason []uint64 // in the order of Reasons
}

type tenantChartsData struct {
	T                  *registry.Tenant
	Range              string
	Ranges             []string
	Series             server.HistorySeries
	Requests, Refusals template.HTML
	Latency            template.HTML
	Rows               []chartRow // steps with requests
}

// tenantCharts is one tenant's charts: requests, refusals by reason and
// latency over the chosen range, each with its numbers in a table.
func (c *Console) tenantCharts(w http.ResponseWriter, r *http.Request, s *session) {
	if c.o.Charts == nil {
		c.errorPage(w, r, s, http.StatusNotFound, "Charts", "Charts are not available: this console was started without the server's metrics history.")
		return
	}
	t, err := c.o.Service.GetTenant(r.Context(), s.principal(), tenant.ID(r.PathValue("id")))
	if errors.Is(err, registry.ErrNotFound) {
		c.errorPage(w, r, s, http.StatusNotFound, "No such tenant", "No tenant has this id. Find the tenant on the Tenants page.")
		return
	}
	if err != nil {
		c.internalError(w, r, s, err)
		return
	}
	d := tenantChartsData{T: t, Range: "24h"}
	span := 24 * time.Hour
	for _, cr := range chartRanges {
		d.Ranges = append(d.Ranges, cr.Value)
		if cr.Value == r.URL.Query().Get("range") {
			d.Range, span = cr.Value, cr.D
		}
	}
	now := c.o.Now()
	// The latest span, in whole steps: the current step and those before.
	since := now.Add(-span + server.HistoryBucket)
	d.Series = c.o.Charts.History(t.ID, since)
	d.Requests, d.Refusals, d.Latency = tenantChartSVGs(t, d.Series)
	for _, p := range d.Series.Points {
		if p.Requests == 0 {
			continue
		}
		row := chartRow{HistoryPoint: p}
		for _, reason := range d.Series.Reasons {
			row.ByReason = append(row.ByReason, p.Refusals[reason])
		}
		d.Rows = append(d.Rows, row)
	}
	c.render(w, r, s, http.StatusOK, "charts_tenant", "Charts", d)
}

// tenantChartSVGs draws a tenant's three charts.
func tenantChartSVGs(t *registry.Tenant, hs server.HistorySeries) (requests, refusals, latency template.HTML) {
	n := len(hs.Points)
	times := make([]time.Time, n)
	all, errs, refused := make([]float64, n), make([]float64, n), make([]float64, n)
	p50, p99 := make([]float64, n), make([]float64, n)
	byReason := make([][]float64, len(hs.Reasons))
	for j := range byReason {
		byReason[j] = make([]float64, n)
	}
	for i, p := range hs.Points {
		times[i] = p.Start
		all[i], errs[i], refused[i] = float64(p.Requests), float64(p.Errors), float64(p.Refused)
		p50[i], p99[i] = math.NaN(), math.NaN()
		if p.Requests > 0 {
			p50[i], p99[i] = float64(p.P50)/float64(time.Millisecond), float64(p.P99)/float64(time.Millisecond)
		}
		for j, reason := range hs.Reasons {
			byReason[j][i] = float64(p.Refusals[reason])
		}
	}
	name := t.Name
	if name == "" {
		name = t.ExternalID
	}
	span := formatSpan(time.Duration(n) * hs.Bucket)
	requests = lineChart{
		ID: "chart-requests", Title: fmt.Sprintf("Requests of %s, last %s", name, span),
		Desc:   fmt.Sprintf("%d requests in all: %d served with an error, %d refused. The table below has the numbers.", hs.Total.Requests, hs.Total.Errors, hs.Total.Refused),
		YLabel: "requests per step", Times: times, Step: hs.Bucket, Counts: true, Empty: "no requests in this range",
		Series: []chartSeries{{"all requests", all}, {"errors", errs}, {"refused", refused}},
	}.svg()
	var rs []chartSeries
	for j, reason := range hs.Reasons {
		rs = append(rs, chartSeries{reason, byReason[j]})
	}
	desc := "No refusals."
	if len(rs) > 0 {
		desc = fmt.Sprintf("%d refusals, one line per reason:", hs.Total.Refused)
		for _, reason := range hs.Reasons {
			desc += fmt.Sprintf(" %s %d;", reason, hs.Total.Refusals[reason])
		}
	}
	refusals = lineChart{
		ID: "chart-refusals", Title: fmt.Sprintf("Refusals of %s by reason, last %s", name, span), Desc: desc,
		YLabel: "refusals per step", Times: times, Step: hs.Bucket, Series: rs, Counts: true, Empty: "no refusals in this range",
	}.svg()
	desc = "No requests."
	if hs.Total.Requests > 0 {
		desc = fmt.Sprintf("Over the whole range: median %s, 99th percentile %s (estimates; steps without requests have no point).",
			formatLatency(hs.Total.P50), formatLatency(hs.Total.P99))
	}
	latency = lineChart{
		ID: "chart-latency", Title: fmt.Sprintf("Latency of %s, last %s", name, span), Desc: desc,
		YLabel: "latency (ms)", Times: times, Step: hs.Bucket, YFormat: formatMillis, Empty: "no requests in this range",
		Series: []chartSeries{{"p50", p50}, {"p99", p99}},
	}.svg()
	return requests, refusals, latency
}

func formatSpan(d time.Duration) string {
	switch h := (d + time.Hour/2) / time.Hour; {
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", d/time.Minute)
	case h == 1:
		return "hour"
	default:
		return fmt.Sprintf("%d hours", h)
	}
}
