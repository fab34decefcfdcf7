package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Activity gives the tenants page each tenant's recent traffic (the 24 h
// sparkline column).
type Activity interface {
	// TenantActivity returns the series of those of ids that have any;
	// a tenant without one shows an empty cell.
	TenantActivity(ctx context.Context, ids []tenant.ID) map[tenant.ID]Series
}

// Series is a tenant's requests and refusals per interval over the last
// 24 hours, oldest first, both of the same length.
type Series struct {
	Requests []float64
	Refusals []float64
	// Step is the length of one interval.
	Step time.Duration
}

// tenantPageSize is how many tenants one page of the list shows.
const tenantPageSize = 50

func (c *Console) tenantRoutes(mux *http.ServeMux) {
	mux.Handle("GET /console/tenants", c.admin(c.tenantList))
	mux.Handle("GET /console/tenants/{id}", c.admin(c.tenantDetail))
	mux.Handle("POST /console/tenants/{id}", c.admin(c.tenantUpdate))
	mux.Handle("GET /console/tenants/{id}/{action}", c.admin(c.confirmAction))
	mux.Handle("POST /console/tenants/{id}/{action}", c.admin(c.doAction))
}

// tenantRow is a tenant in the list.
type tenantRow struct {
	*registry.Tenant
	Activity template.HTML
}

type tenantListData struct {
	Q, Status, TrialBefore string
	Statuses               []registry.Status
	Tenants                []tenantRow
	Next                   template.URL // query of the next page (url.Values.Encode: safe in an href), or ""
	Problems               []string
	HasActivity            bool
	DefaultRateLimit       int
}

// tenantList is the tenants page: search by name or external id, filter
// by status and trial end.
func (c *Console) tenantList(w http.ResponseWriter, r *http.Request, s *session) {
	q := r.URL.Query()
	d := tenantListData{Q: q.Get("q"), Status: q.Get("status"), TrialBefore: q.Get("trial_before"),
		Statuses: registry.Statuses, HasActivity: c.o.Activity != nil, DefaultRateLimit: c.o.DefaultRateLimit}
	f := admin.TenantFilter{Name: d.Q, Status: registry.Status(d.Status), After: tenant.ID(q.Get("after")), Limit: tenantPageSize}
	if d.TrialBefore != "" {
		t, err := time.Parse(time.DateOnly, d.TrialBefore)
		if err != nil {
			d.Problems = append(d.Problems, "trial ends before: a date such as 2026-12-31")
		}
		f.TrialEndsBefore = t.AddDate(0, 0, 1) // the whole day
	}
	if len(d.Problems) == 0 {
		page, err := c.o.Service.ListTenants(r.Context(), s.principal(), f)
		if err != nil {
			if !c.callerError(w, r, s, err, &d.Problems) {
				return
			}
		} else {
			for _, t := range page.Tenants {
				d.Tenants = append(d.Tenants, tenantRow{Tenant: t})
			}
			if page.Next != "" {
				nq := url.Values{"q": {d.Q}, "status": {d.Status}, "trial_before": {d.TrialBefore}, "after": {string(page.Next)}}
				d.Next = template.URL(nq.Encode())
			}
		}
	}
	if c.o.Activity != nil && len(d.Tenants) > 0 {
		ids := make([]tenant.ID, len(d.Tenants))
		for i, t := range d.Tenants {
			ids[i] = t.ID
		}
		act := c.o.Activity.TenantActivity(r.Context(), ids)
		for i := range d.Tenants {
			if sr, ok := act[d.Tenants[i].ID]; ok {
				d.Tenants[i].Activity = sparkline(sr)
			}
		}
	}
	status := http.StatusOK
	if len(d.Problems) > 0 {
		status = http.StatusUnprocessableEntity
	}
	c.render(w, r, s, status, "tenants", "Tenants", d)
}

// callerError handles an operation's error: one meant for the admin is
// added to problems (and true returned, the page goes on); any other is
// logged and answered with an error page.
func (c *Console) callerError(w http.ResponseWriter, r *http.Request, s *session, err error, problems *[]string) bool {
	var v *registry.ValidationError
	switch {
	case errors.As(err, &v):
		*problems = append(*problems, v.Problems...)
		return true
	case admin.CallerError(err):
		*problems = append(*problems, err.Error())
		return true
	}
	c.internalError(w, r, s, err)
	return false
}

// internalError logs err and shows a page without its details.
func (c *Console) internalError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	id := "con_" + randomID(9)
	c.log.ErrorContext(r.Context(), "console: internal error", "admin", s.subject, "path", r.URL.Path, "error_id", id, "err", err)
	c.errorPage(w, r, s, http.StatusInternalServerError, "Internal error",
		"The operation failed on the server (error id "+id+"; the server log has the details). Nothing more was changed; try again, and report the id if it persists.")
}

// tenantForm is the edit form's fields as text, so a refused form shows
// what was typed.
type tenantForm struct {
	Name, Status, TrialEndsAt, RateLimit, RateBurst string
	Tools                                           []string // checked (with Options.Tools)
	ToolsText                                       string   // without Options.Tools
	Flags, Config                                   string
}

func formOf(t *registry.Tenant) tenantForm {
	f := tenantForm{Name: t.Name, Status: string(t.Status), Tools: slices.Clone(t.AllowedTools), ToolsText: strings.Join(t.AllowedTools, " ")}
	if !t.TrialEndsAt.IsZero() {
		f.TrialEndsAt = t.TrialEndsAt.UTC().Format(time.DateOnly)
	}
	if t.RateLimit != 0 {
		f.RateLimit = strconv.Itoa(t.RateLimit)
	}
	if t.RateBurst != 0 {
		f.RateBurst = strconv.Itoa(t.RateBurst)
	}
	flags := slices.Sorted(maps.Keys(t.Flags))
	f.Flags = strings.Join(flags, "\n")
	var cfg []string
	for _, k := range slices.Sorted(maps.Keys(t.Config)) {
		cfg = append(cfg, k+"="+t.Config[k])
	}
	f.Config = strings.Join(cfg, "\n")
	return f
}

type tenantDetailData struct {
	T         *registry.Tenant
	Form      tenantForm
	Problems  []string
	Tools     []string // Options.Tools
	Editable  bool     // status active, trial or suspended
	Actions   []action
	RateLimit string
}

// tenantDetail is one tenant: its record, the edit form and its
// lifecycle actions.
func (c *Console) tenantDetail(w http.ResponseWriter, r *http.Request, s *session) {
	t, ok := c.tenant(w, r, s)
	if !ok {
		return
	}
	c.renderDetail(w, r, s, http.StatusOK, t, formOf(t), nil)
}

func (c *Console) renderDetail(w http.ResponseWriter, r *http.Request, s *session, status int, t *registry.Tenant, f tenantForm, problems []string) {
	d := tenantDetailData{T: t, Form: f, Problems: problems, Tools: c.o.Tools,
		Editable: t.Status == registry.StatusActive || t.Status == registry.StatusTrial || t.Status == registry.StatusSuspended,
		Actions:  actionsFor(t), RateLimit: c.rateText(t)}
	c.render(w, r, s, status, "tenant", "Tenants", d)
}

// rateText describes a tenant's rate limit.
func (c *Console) rateText(t *registry.Tenant) string {
	if t.RateLimit != 0 {
		return fmt.Sprintf("%d/min", t.RateLimit)
	}
	if c.o.DefaultRateLimit > 0 {
		return fmt.Sprintf("default (%d/min)", c.o.DefaultRateLimit)
	}
	return "default"
}

// tenant reads the tenant of the URL; on failure it has answered.
func (c *Console) tenant(w http.ResponseWriter, r *http.Request, s *session) (*registry.Tenant, bool) {
	t, err := c.o.Service.GetTenant(r.Context(), s.principal(), tenant.ID(r.PathValue("id")))
	switch {
	case errors.Is(err, registry.ErrNotFound):
		c.errorPage(w, r, s, http.StatusNotFound, "No such tenant", "There is no tenant with this id. Find it on the Tenants page.")
		return nil, false
	case err != nil:
		var problems []string
		if c.callerError(w, r, s, err, &problems) {
			c.errorPage(w, r, s, http.StatusServiceUnavailable, "Not available", strings.Join(problems, "; "))
		}
		return nil, false
	}
	return t, true
}

// tenantUpdate applies the edit form: only the fields that differ from the
// record are changed, every problem is shown in the form at once, and
// nothing is changed when there is one.
func (c *Console) tenantUpdate(w http.ResponseWriter, r *http.Request, s *session) {
	t, ok := c.tenant(w, r, s)
	if !ok {
		return
	}
	pf := r.PostForm
	f := tenantForm{Name: pf.Get("name"), Status: pf.Get("status"), TrialEndsAt: pf.Get("trial_ends_at"),
		RateLimit: pf.Get("rate_limit"), RateBurst: pf.Get("rate_burst"), Tools: pf["tools"],
		ToolsText: pf.Get("tools_text"), Flags: pf.Get("flags"), Config: pf.Get("config")}
	if f.Status == "" {
		f.Status = string(t.Status)
	}
	patch, problems := c.patchOf(t, f, pf.Has("tools_text"))
	if len(problems) == 0 && patch == nil {
		c.redirect(w, r, s, "/console/tenants/"+string(t.ID), &flash{Kind: "ok", Text: "Nothing to change: the form matches the record."})
		return
	}
	if len(problems) == 0 {
		_, err := c.o.Service.UpdateTenant(r.Context(), s.principal(), t.ID, *patch)
		if err == nil {
			c.redirect(w, r, s, "/console/tenants/"+string(t.ID), &flash{Kind: "ok", Text: "Saved."})
			return
		}
		if !c.callerError(w, r, s, err, &problems) {
			return
		}
	}
	c.renderDetail(w, r, s, http.StatusUnprocessableEntity, t, f, problems)
}

// patchOf turns the form into a patch of the fields that changed (nil if
// none did), or the problems of the form.
func (c *Console) patchOf(t *registry.Tenant, f tenantForm, toolsAsText bool) (*admin.TenantPatch, []string) {
	var p admin.TenantPatch
	var problems []string
	changed := false
	if f.Name != t.Name {
		p.Name, changed = &f.Name, true
	}
	if st := registry.Status(f.Status); st != t.Status {
		p.Status, changed = &st, true
	}
	intField := func(name, v string, cur int, dst **int) {
		n := 0
		if v = strings.TrimSpace(v); v != "" {
			var err error
			if n, err = strconv.Atoi(v); err != nil || n < 0 {
				problems = append(problems, name+": a whole number of 0 or more (empty = the deployment default), not "+strconv.Quote(v))
				return
			}
		}
		if n != cur {
			*dst, changed = &n, true
		}
	}
	intField("rate limit", f.RateLimit, t.RateLimit, &p.RateLimit)
	intField("rate burst", f.RateBurst, t.RateBurst, &p.RateBurst)
	var trial time.Time
	if v := strings.TrimSpace(f.TrialEndsAt); v != "" {
		var err error
		if trial, err = time.Parse(time.DateOnly, v); err != nil {
			problems = append(problems, "trial ends: a date such as 2026-12-31, not "+strconv.Quote(v))
		}
	}
	if trial.Format(time.DateOnly) != t.TrialEndsAt.UTC().Format(time.DateOnly) {
		p.TrialEndsAt, changed = &trial, true
	}
	tools := f.Tools
	if toolsAsText {
		tools = strings.FieldsFunc(f.ToolsText, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' || r == '\t' })
	}
	tools = slices.Compact(slices.Sorted(slices.Values(tools)))
	if !slices.Equal(tools, slices.Sorted(slices.Values(t.AllowedTools))) {
		p.AllowedTools, changed = &tools, true
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(f.Flags, "\n") {
		if k := strings.TrimSpace(line); k != "" {
			flags[k] = true
		}
	}
	for k := range t.Flags {
		if !flags[k] && t.Flags[k] {
			flags[k] = false
		}
	}
	for k, v := range flags {
		if t.Flags[k] == v {
			delete(flags, k)
		}
	}
	if len(flags) > 0 {
		p.Flags, changed = flags, true
	}
	cfg := map[string]*string{}
	seen := map[string]bool{}
	for i, line := range strings.Split(f.Config, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			problems = append(problems, fmt.Sprintf("config line %d: key=value, not %q", i+1, line))
			continue
		}
		seen[k] = true
		if cur, ok := t.Config[k]; !ok || cur != v {
			cfg[k] = &v
		}
	}
	for k := range t.Config {
		if !seen[k] {
			cfg[k] = nil
		}
	}
	if len(cfg) > 0 {
		p.Config, changed = cfg, true
	}
	if len(problems) > 0 {
		return nil, problems
	}
	if !changed {
		return nil, nil
	}
	return &p, nil
}
