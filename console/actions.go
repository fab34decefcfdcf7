package console

import (
	"net/http"
	"slices"

	"github.com/tenantmcp/tenantmcp/registry"
)

// action is a lifecycle action on one tenant. Each has a confirmation page
// of its own (GET /console/tenants/{id}/{name}) naming the tenant, which
// the operator submits (POST to the same URL).
type action struct {
	Name   string // URL segment
	Label  string // button
	What   string // the confirmation's explanation
	Danger bool
	Reason bool // asks for a reason (recorded in the audit trail)
	// from are the statuses it applies to.
	from []registry.Status
}

var actions = []action{
	{Name: "suspend", Label: "Suspend", Danger: true, Reason: true,
		What: "Every request of this tenant is refused from now on, on every replica, until it is resumed. Its data is kept.",
		from: []registry.Status{registry.StatusActive, registry.StatusTrial}},
	{Name: "resume", Label: "Resume", Reason: true,
		What: "The tenant is served again (status active).",
		from: []registry.Status{registry.StatusSuspended}},
	{Name: "archive", Label: "Archive", Danger: true,
		What: "The tenant is suspended and all of its data is written into an archive; the data is purged from the backends after the retention period.",
		from: []registry.Status{registry.StatusActive, registry.StatusTrial, registry.StatusSuspended}},
	{Name: "purge", Label: "Purge now", Danger: true,
		What: "The archived tenant's data is removed from every backend now, without waiting for the retention period. Only its archive (and its audit trail) remain.",
		from: []registry.Status{registry.StatusArchived}},
	{Name: "restore", Label: "Restore", Reason: false,
		What: "The tenant's data is restored from its latest archive (checked against its SHA-256) and the tenant is served again with the status it had.",
		from: []registry.Status{registry.StatusArchived, registry.StatusPurged}},
}

// actionsFor are the actions that apply to t now.
func actionsFor(t *registry.Tenant) []action {
	var out []action
	for _, a := range actions {
		if a.applies(t) {
			out = append(out, a)
		}
	}
	return out
}

func (a action) applies(t *registry.Tenant) bool {
	if !slices.Contains(a.from, t.Status) || t.Lifecycle.Operation != "" && a.Name != "purge" {
		return false
	}
	return a.Name != "restore" || t.Lifecycle.Archive != ""
}

func actionNamed(name string) (action, bool) {
	for _, a := range actions {
		if a.Name == name {
			return a, true
		}
	}
	return action{}, false
}

type confirmData struct {
	T        *registry.Tenant
	A        action
	Reason   string
	Problems []string
}

// confirmAction is an action's confirmation page.
func (c *Console) confirmAction(w http.ResponseWriter, r *http.Request, s *session) {
	a, ok := actionNamed(r.PathValue("action"))
	if !ok {
		c.errorPage(w, r, s, http.StatusNotFound, "Not found", "There is no such tenant action.")
		return
	}
	t, ok := c.tenant(w, r, s)
	if !ok {
		return
	}
	c.render(w, r, s, http.StatusOK, "confirm", "Tenants", confirmData{T: t, A: a})
}

// doAction runs a confirmed action through the admin service.
func (c *Console) doAction(w http.ResponseWriter, r *http.Request, s *session) {
	a, ok := actionNamed(r.PathValue("action"))
	if !ok {
		c.errorPage(w, r, s, http.StatusNotFound, "Not found", "There is no such tenant action.")
		return
	}
	t, ok := c.tenant(w, r, s)
	if !ok {
		return
	}
	ctx, p, reason := r.Context(), s.principal(), r.PostForm.Get("reason")
	var err error
	switch a.Name {
	case "suspend":
		_, err = c.o.Service.SuspendTenant(ctx, p, t.ID, reason)
	case "resume":
		_, err = c.o.Service.ResumeTenant(ctx, p, t.ID, reason)
	case "archive":
		_, err = c.o.Service.ArchiveTenant(ctx, p, t.ID)
	case "purge":
		_, err = c.o.Service.PurgeTenant(ctx, p, t.ID)
	case "restore":
		_, err = c.o.Service.RestoreArchive(ctx, p, t.Lifecycle.Archive)
	}
	if err != nil {
		var problems []string
		if c.callerError(w, r, s, err, &problems) {
			c.render(w, r, s, http.StatusUnprocessableEntity, "confirm", "Tenants", confirmData{T: t, A: a, Reason: reason, Problems: problems})
		}
		return
	}
	name := t.Name
	if name == "" {
		name = t.ExternalID
	}
	c.redirect(w, r, s, "/console/tenants/"+string(t.ID), &flash{Kind: "ok", Text: a.Label + ": done for " + name + "."})
}
