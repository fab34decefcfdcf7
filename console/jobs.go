package console

import (
	"cmp"
	"net/http"
	"slices"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/registry"
)

// JobSource feeds the jobs page (Options.Jobs) with the progress of
// lifecycle operations; *lifecycle.Manager implements it.
type JobSource interface {
	// Steps lists the steps of an operation for a tenant, in order.
	Steps(op string, t *registry.Tenant) []string
	// Progress is how many steps of t's operation in progress are done.
	Progress(t *registry.Tenant) (done, total int, ok bool)
}

// Bounds of the jobs page: it reads the registry page by page, at most
// jobsScanPages pages of admin.MaxPageSize tenants, and lists at most
// jobsListed tenants in each section.
const (
	jobsScanPages = 10
	jobsListed    = 200
	// jobsRecent is how far back finished purges and new tenants count as
	// recent.
	jobsRecent = 7 * 24 * time.Hour
	// jobIdle is how long an operation may go without a step before the
	// page calls it idle: the server's reconciler finishes operations idle
	// for a minute, so one idle for longer failed and is retried.
	jobIdle = 2 * time.Minute
)

// jobRow is a tenant's operation in progress.
type jobRow struct {
	T           *registry.Tenant
	Steps       []string
	Done, Total int
	Known       bool // Done and Total are known
	Idle        bool // no step for jobIdle
}

type jobsData struct {
	InProgress []jobRow
	Archived   []*registry.Tenant
	Purged     []*registry.Tenant // recently
	Created    []*registry.Tenant // recently, by any means (create, import)
	Now        time.Time
	Scanned    int
	Truncated  bool // more tenants than were scanned
	Problems   []string
	// Import is the upload form and this replica's imports (import.go).
	Import importData
}

func (c *Console) jobRoutes(mux *http.ServeMux) {
	mux.Handle("GET /console/jobs", c.admin(c.jobsPage))
	c.importRoutes(mux)
}

// jobsPage lists this replica's imports, lifecycle operations in progress
// with their progress, archived tenants with their purge dates, recent
// purges and new tenants.
func (c *Console) jobsPage(w http.ResponseWriter, r *http.Request, s *session) {
	d, ok := c.jobsData(w, r, s)
	if !ok {
		return
	}
	c.render(w, r, s, cmp.Or(statusOf(d.Problems), http.StatusOK), "jobs", "Jobs", d)
}

// jobsData reads the jobs page's data; false: an internal error was
// answered.
func (c *Console) jobsData(w http.ResponseWriter, r *http.Request, s *session) (jobsData, bool) {
	now := c.o.Now()
	d := jobsData{Now: now, Import: c.importData()}
	f := admin.TenantFilter{Limit: admin.MaxPageSize}
	for page := 0; ; page++ {
		if page == jobsScanPages {
			d.Truncated = true
			break
		}
		p, err := c.o.Service.ListTenants(r.Context(), s.principal(), f)
		if err != nil {
			if !c.callerError(w, r, s, err, &d.Problems) {
				return d, false
			}
			break
		}
		for _, t := range p.Tenants {
			d.add(c.o.Jobs, t, now)
		}
		d.Scanned += len(p.Tenants)
		if p.Next == "" {
			break
		}
		f.After = p.Next
	}
	slices.SortFunc(d.InProgress, func(a, b jobRow) int { return b.T.UpdatedAt.Compare(a.T.UpdatedAt) })
	slices.SortFunc(d.Archived, func(a, b *registry.Tenant) int {
		return a.Lifecycle.PurgeAfter.Compare(b.Lifecycle.PurgeAfter)
	})
	slices.SortFunc(d.Purged, func(a, b *registry.Tenant) int { return b.Lifecycle.PurgedAt.Compare(a.Lifecycle.PurgedAt) })
	slices.SortFunc(d.Created, func(a, b *registry.Tenant) int { return b.CreatedAt.Compare(a.CreatedAt) })
	d.InProgress = d.InProgress[:min(len(d.InProgress), jobsListed)]
	d.Archived = d.Archived[:min(len(d.Archived), jobsListed)]
	d.Purged = d.Purged[:min(len(d.Purged), jobsListed)]
	d.Created = d.Created[:min(len(d.Created), jobsListed)]
	return d, true
}

// add sorts t into the page's sections.
func (d *jobsData) add(js JobSource, t *registry.Tenant, now time.Time) {
	lc := t.Lifecycle
	if lc.Operation != "" {
		row := jobRow{T: t, Idle: now.Sub(t.UpdatedAt) > jobIdle}
		if js != nil {
			row.Steps = js.Steps(lc.Operation, t)
			row.Done, row.Total, row.Known = js.Progress(t)
		}
		d.InProgress = append(d.InProgress, row)
		return
	}
	switch {
	case t.Status == registry.StatusArchived:
		d.Archived = append(d.Archived, t)
	case t.Status == registry.StatusPurged && now.Sub(lc.PurgedAt) < jobsRecent:
		d.Purged = append(d.Purged, t)
	}
	if now.Sub(t.CreatedAt) < jobsRecent && t.Status != registry.StatusProvisioning {
		d.Created = append(d.Created, t)
	}
}

// statusOf is 422 for a page with problems, else 0.
func statusOf(problems []string) int {
	if len(problems) > 0 {
		return http.StatusUnprocessableEntity
	}
	return 0
}
