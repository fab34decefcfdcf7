package console

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// ChartSource is the server's in-memory metrics history (server.History…);
// *server.Server implements it. It feeds the charts page (Options.Charts)
// and, through NewActivity, the tenants page's sparklines.
type ChartSource interface {
	// History is a tenant's requests, refusals by reason and latency since
	// a time, one point per server.HistoryBucket.
	History(id tenant.ID, since time.Time) server.HistorySeries
	// HistorySummary is a tenant's last 24 hours in points steps.
	HistorySummary(id tenant.ID, points int) server.HistorySummary
	// HistoryTenants lists up to n tenants with history, the most
	// recently active first.
	HistoryTenants(n int) []tenant.ID
}

// LateHistory is a ChartSource for a server built after the console
// (the console is one of the server's routes): it calls the function on
// every use. Until it returns a source (nil before the server is built),
// every tenant's history is empty.
//
//	var srv atomic.Pointer[server.Server]
//	charts := console.LateHistory(func() console.ChartSource {
//		if s := srv.Load(); s != nil {
//			return s
//		}
//		return nil
//	})
type LateHistory func() ChartSource

func (f LateHistory) History(id tenant.ID, since time.Time) server.HistorySeries {
	if h := f(); h != nil {
		return h.History(id, since)
	}
	return server.HistorySeries{Tenant: id, Bucket: server.HistoryBucket}
}

func (f LateHistory) HistorySummary(id tenant.ID, points int) server.HistorySummary {
	if h := f(); h != nil {
		return h.HistorySummary(id, points)
	}
	return server.HistorySummary{}
}

func (f LateHistory) HistoryTenants(n int) []tenant.ID {
	if h := f(); h != nil {
		return h.HistoryTenants(n)
	}
	return nil
}

// sparkPoints is the number of steps of a sparkline: hours.
const sparkPoints = 24

// NewActivity returns the tenants page's sparklines (Options.Activity)
// from the server's metrics history: each tenant's requests and refusals
// per hour over the last 24 hours.
func NewActivity(h ChartSource) Activity { return historyActivity{h} }

type historyActivity struct{ h ChartSource }

func (a historyActivity) TenantActivity(_ context.Context, ids []tenant.ID) map[tenant.ID]Series {
	out := make(map[tenant.ID]Series, len(ids))
	for _, id := range ids {
		sum := a.h.HistorySummary(id, sparkPoints)
		if sum.TotalRequests == 0 {
			continue
		}
		s := Series{Requests: make([]float64, len(sum.Requests)), Refusals: make([]float64, len(sum.Refused)), Step: time.Hour}
		for i, v := range sum.Requests {
			s.Requests[i] = float64(v)
		}
		for i, v := range sum.Refused {
			s.Refusals[i] = float64(v)
		}
		out[id] = s
	}
	return out
}

// systemTenant is what the tenant field takes for the system chain
// (events that belong to no tenant).
const systemTenant = "system"

// errNoSuchTenant: the tenant field names no registered tenant.
var errNoSuchTenant = errors.New("no such tenant")

// findTenant resolves the tenant field of a form: an internal id (t…) or
// an exact external id. An internal id that is not registered (a deleted
// tenant's) is returned as a record with only its id, so its audit trail
// can still be read; an external id that matches no tenant, or several
// (of different issuers), is errNoSuchTenant with the candidates.
func (c *Console) findTenant(ctx context.Context, s *session, q string) (*registry.Tenant, []*registry.Tenant, error) {
	q = strings.TrimSpace(q)
	if id, err := tenant.ParseID(q); err == nil {
		t, err := c.o.Service.GetTenant(ctx, s.principal(), id)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return &registry.Tenant{ID: id}, nil, nil
		case err != nil:
			return nil, nil, err
		}
		return t, nil, nil
	}
	page, err := c.o.Service.ListTenants(ctx, s.principal(), admin.TenantFilter{Name: q, Limit: 20})
	if err != nil {
		return nil, nil, err
	}
	var exact []*registry.Tenant
	for _, t := range page.Tenants {
		if t.ExternalID == q {
			exact = append(exact, t)
		}
	}
	if len(exact) == 1 {
		return exact[0], nil, nil
	}
	if len(exact) > 1 {
		return nil, exact, errNoSuchTenant
	}
	return nil, page.Tenants, errNoSuchTenant
}
