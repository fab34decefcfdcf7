package console

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func (c *Console) impersonationRoutes(mux *http.ServeMux) {
	mux.Handle("GET /console/impersonation", c.admin(c.impersonationPage))
	mux.Handle("POST /console/impersonation", c.admin(c.startImpersonation))
	mux.Handle("POST /console/impersonation/{id}/end", c.admin(c.endImpersonation))
}

// impersonationForm is the start form as typed.
type impersonationForm struct {
	Tenant, Reason, Ticket, Duration, User string
	Write, IncludeSuspended                bool
}

type impersonationData struct {
	Form     impersonationForm
	Target   *registry.Tenant // the tenant of ?tenant=, if it exists
	Problems []string
	Active   []*admin.Impersonation
	Past     []*admin.Impersonation
	Now      time.Time
}

// impersonationPage lists active and past impersonations and offers the
// start form (prefilled from ?tenant=).
func (c *Console) impersonationPage(w http.ResponseWriter, r *http.Request, s *session) {
	f := impersonationForm{Tenant: r.URL.Query().Get("tenant")}
	c.renderImpersonation(w, r, s, http.StatusOK, f, nil)
}

func (c *Console) renderImpersonation(w http.ResponseWriter, r *http.Request, s *session, status int, f impersonationForm, problems []string) {
	ctx := r.Context()
	d := impersonationData{Form: f, Problems: problems, Now: c.o.Now()}
	if f.Tenant != "" && tenant.ID(f.Tenant).Valid() {
		if t, err := c.o.Service.GetTenant(ctx, s.principal(), tenant.ID(f.Tenant)); err == nil {
			d.Target = t
		}
	}
	all, err := c.o.Service.ListImpersonations(ctx, s.principal(), admin.ImpersonationFilter{Limit: 100})
	if err != nil {
		if !c.callerError(w, r, s, err, &d.Problems) {
			return
		}
	}
	for _, g := range all {
		if g.ActiveAt(d.Now) {
			d.Active = append(d.Active, g)
		} else {
			d.Past = append(d.Past, g)
		}
	}
	c.render(w, r, s, status, "impersonation", "Impersonation", d)
}

// startImpersonation starts one; the credential is shown once on the
// next page.
func (c *Console) startImpersonation(w http.ResponseWriter, r *http.Request, s *session) {
	pf := r.PostForm
	f := impersonationForm{Tenant: strings.TrimSpace(pf.Get("tenant")), Reason: pf.Get("reason"), Ticket: pf.Get("ticket"),
		Duration: strings.TrimSpace(pf.Get("duration")), User: strings.TrimSpace(pf.Get("user")),
		Write: pf.Get("write") == "on", IncludeSuspended: pf.Get("include_suspended") == "on"}
	req := admin.ImpersonationRequest{Tenant: tenant.ID(f.Tenant), Reason: f.Reason, Ticket: f.Ticket, User: f.User,
		Write: f.Write, IncludeSuspended: f.IncludeSuspended}
	var problems []string
	if f.Tenant == "" {
		problems = append(problems, "tenant: required (the tenant's id, from its page)")
	}
	if f.Duration != "" {
		d, err := time.ParseDuration(f.Duration)
		if n, nerr := strconv.Atoi(f.Duration); nerr == nil {
			d, err = time.Duration(n)*time.Minute, nil
		}
		if err != nil || d <= 0 {
			problems = append(problems, "duration: minutes (30) or a duration such as 45m or 2h, not "+strconv.Quote(f.Duration))
		}
		req.Duration = d
	}
	if len(problems) == 0 {
		g, err := c.o.Service.Impersonate(r.Context(), s.principal(), req)
		if err == nil {
			c.redirect(w, r, s, "/console/impersonation", &flash{Kind: "ok",
				Text:   "Impersonation " + g.ID + " started; it ends " + g.ExpiresAt.UTC().Format("2006-01-02 15:04 UTC") + ". Use the credential below as a bearer token; it is not shown again.",
				Secret: g.Credential})
			return
		}
		if errors.Is(err, registry.ErrNotFound) {
			problems = append(problems, "tenant: there is no tenant with id "+strconv.Quote(f.Tenant))
		} else if !c.callerError(w, r, s, err, &problems) {
			return
		}
	}
	c.renderImpersonation(w, r, s, http.StatusUnprocessableEntity, f, problems)
}

// endImpersonation ends one before it expires.
func (c *Console) endImpersonation(w http.ResponseWriter, r *http.Request, s *session) {
	id := r.PathValue("id")
	_, err := c.o.Service.EndImpersonation(r.Context(), s.principal(), id)
	switch {
	case errors.Is(err, admin.ErrNotFound):
		c.redirect(w, r, s, "/console/impersonation", &flash{Kind: "error", Text: "There is no impersonation " + strconv.Quote(id) + "."})
	case err != nil:
		var problems []string
		if c.callerError(w, r, s, err, &problems) {
			c.redirect(w, r, s, "/console/impersonation", &flash{Kind: "error", Text: strings.Join(problems, "; ")})
		}
	default:
		c.redirect(w, r, s, "/console/impersonation", &flash{Kind: "ok", Text: "Impersonation " + id + " ended; its credential is refused from its next request."})
	}
}
