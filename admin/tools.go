package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// The MCP admin tools: each is a thin translation of its arguments into a
// Service call. The server serves them to admins only (server.AdminOptions).

// principalFrom is the admin a tool call or API request comes from.
func principalFrom(ctx context.Context, via string) (Principal, error) {
	a := server.AdminFrom(ctx)
	if a == nil || a.Identity == nil {
		// Unreachable through the server: it serves admin tools and the
		// API to admins only.
		return Principal{}, errors.New("admin: no admin identity in the request")
	}
	return Principal{Subject: a.Identity.UserID, Issuer: a.Identity.Issuer, Via: via, RequestID: a.RequestID}, nil
}

// toolError makes the errors meant for the admin visible to it; anything
// else stays an internal error (logged with the request id).
func toolError(err error) error {
	if err == nil {
		return nil
	}
	if callerError(err) {
		return server.UserError(err)
	}
	return err
}

// callerError reports whether err's message is meant for the admin.
func callerError(err error) bool {
	return errors.Is(err, registry.ErrNotFound) || errors.Is(err, registry.ErrExists) ||
		errors.Is(err, registry.ErrInvalid) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, ErrIdempotencyConflict) || isAuditUnavailable(err) || isArchiveError(err)
}

// isArchiveError reports the lifecycle's refusals that concern the
// archive or the data: meant for the admin.
func isArchiveError(err error) bool {
	return errors.Is(err, lifecycle.ErrNoArchiveStore) || errors.Is(err, lifecycle.ErrArchiveMissing) ||
		errors.Is(err, archive.ErrCorrupt) || errors.Is(err, archive.ErrLimit) || errors.Is(err, archive.ErrUnsupportedVersion) ||
		errors.Is(err, archive.ErrInvalidName) || errors.Is(err, archive.ErrNotFound) || errors.Is(err, store.ErrNotEmpty) ||
		errors.Is(err, fs.ErrNotExist)
}

type listTenantsIn struct {
	Status string `json:"status,omitempty" jsonschema:"only tenants with this status: provisioning, active, trial, suspended, archived or purged"`
	Name   string `json:"name,omitempty" jsonschema:"only tenants whose name or external id contains this text (case-insensitive)"`
	After  string `json:"after,omitempty" jsonschema:"next of the previous page"`
	Limit  int    `json:"limit,omitempty" jsonschema:"tenants per page, 1 to 1000 (default 100)"`
	// TrialEndsBefore lists trials ending soon.
	TrialEndsBefore string `json:"trial_ends_before,omitempty" jsonschema:"only trials that end before this time and have not ended (RFC 3339)"`
}

type tenantIn struct {
	Tenant string `json:"tenant" jsonschema:"the tenant's internal id (t…)"`
}

type statusIn struct {
	Tenant string `json:"tenant" jsonschema:"the tenant's internal id (t…)"`
	Reason string `json:"reason,omitempty" jsonschema:"why (recorded in the tenant's audit trail)"`
}

type createIn struct {
	TenantSpec
	IdempotencyKey string `json:"idempotency_key,omitempty" jsonschema:"a retry with the same key returns the tenant the first call created"`
}

type updateIn struct {
	Tenant string `json:"tenant" jsonschema:"the tenant's internal id (t…)"`
	TenantPatch
}

type impersonateIn struct {
	Tenant           string   `json:"tenant" jsonschema:"the tenant's internal id (t…)"`
	Reason           string   `json:"reason" jsonschema:"why (required; shown in the tenant's own audit trail)"`
	Ticket           string   `json:"ticket,omitempty" jsonschema:"support ticket reference"`
	Scopes           []string `json:"scopes,omitempty" jsonschema:"scopes to grant (default: those of the read-only tools); never an admin scope"`
	Write            bool     `json:"write,omitempty" jsonschema:"also allow tools that are not read-only"`
	Duration         string   `json:"duration,omitempty" jsonschema:"how long, e.g. 30m or 2h (default 30m)"`
	User             string   `json:"user,omitempty" jsonschema:"user id to act as inside the tenant (default impersonator:<you>)"`
	IncludeSuspended bool     `json:"include_suspended,omitempty" jsonschema:"allow a suspended tenant"`
}

type deleteIn struct {
	Tenant   string `json:"tenant" jsonschema:"the tenant's internal id (t…)"`
	PurgeNow bool   `json:"purge_now,omitempty" jsonschema:"purge the data now instead of after the retention period"`
}

type restoreIn struct {
	Archive string `json:"archive" jsonschema:"the archive's name in the archive store (a tenant record's lifecycle.archive)"`
}

type endIn struct {
	ID string `json:"impersonation_id" jsonschema:"the impersonation's id (imp_…)"`
}

type listImpersonationsIn struct {
	Tenant string `json:"tenant,omitempty" jsonschema:"only this tenant's impersonations"`
	Admin  string `json:"admin,omitempty" jsonschema:"only this admin's (subject)"`
	Active bool   `json:"active,omitempty" jsonschema:"only those active now"`
	Before string `json:"before,omitempty" jsonschema:"id of the last impersonation of the previous page"`
	Limit  int    `json:"limit,omitempty" jsonschema:"per page, 1 to 1000 (default 100)"`
}

type impersonationsOut struct {
	Impersonations []*Impersonation `json:"impersonations"`
}

// ParseDuration parses an impersonation duration ("30m", "2h"); "" is 0.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid(fmt.Sprintf("duration: %q is not a duration (e.g. 30m or 2h)", s))
	}
	return d, nil
}

// Tools returns the MCP admin tools over s.
func Tools(s *Service) []server.Tool {
	return []server.Tool{
		server.NewTool("list_all_tenants", "List every tenant of the deployment, paged, optionally filtered by status, name, or trials ending before a time.",
			func(ctx context.Context, in listTenantsIn) (*TenantPage, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				f := TenantFilter{Status: registry.Status(in.Status), Name: in.Name, After: tenant.ID(in.After), Limit: in.Limit}
				if in.TrialEndsBefore != "" {
					if f.TrialEndsBefore, err = time.Parse(time.RFC3339, in.TrialEndsBefore); err != nil {
						return nil, toolError(invalid(fmt.Sprintf("trial_ends_before: %q is not an RFC 3339 time", in.TrialEndsBefore)))
					}
				}
				page, err := s.ListTenants(ctx, p, f)
				return page, toolError(err)
			}, server.ReadOnly()),
		server.NewTool("get_tenant", "Show one tenant's record.",
			func(ctx context.Context, in tenantIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.GetTenant(ctx, p, tenant.ID(in.Tenant))
				return t, toolError(err)
			}, server.ReadOnly()),
		server.NewTool("create_tenant", "Register a tenant (its identity provider's tenant id, name, limits, tools, flags, trial) and create its storage.",
			func(ctx context.Context, in createIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, _, err := s.CreateTenant(ctx, p, in.TenantSpec, in.IdempotencyKey)
				return t, toolError(err)
			}),
		server.NewTool("update_tenant", "Change a tenant's name, rate limit, burst, allowed tools, trial end, flags or config; fields not given stay as they are.",
			func(ctx context.Context, in updateIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.UpdateTenant(ctx, p, tenant.ID(in.Tenant), in.TenantPatch)
				return t, toolError(err)
			}),
		server.NewTool("suspend_tenant", "Suspend a tenant: every request of it is refused, on every replica, from now on.",
			func(ctx context.Context, in statusIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.SuspendTenant(ctx, p, tenant.ID(in.Tenant), in.Reason)
				return t, toolError(err)
			}),
		server.NewTool("resume_tenant", "Resume a suspended tenant (status active).",
			func(ctx context.Context, in statusIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.ResumeTenant(ctx, p, tenant.ID(in.Tenant), in.Reason)
				return t, toolError(err)
			}),
		server.NewTool("delete_tenant", "Delete a tenant: refused at once, its data archived and purged after the retention period (or now with purge_now), then its registration removed; a tenant registered again with the same external id is new and never sees the old data.",
			func(ctx context.Context, in deleteIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.DeleteTenant(ctx, p, tenant.ID(in.Tenant), in.PurgeNow)
				return t, toolError(err)
			}),
		server.NewTool("archive_tenant", "Suspend a tenant and write all of its data (and audit trail) into an archive; the data is purged after the retention period.",
			func(ctx context.Context, in tenantIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.ArchiveTenant(ctx, p, tenant.ID(in.Tenant))
				return t, toolError(err)
			}),
		server.NewTool("purge_tenant", "Remove an archived tenant's data from every backend now (its archive and audit trail stay).",
			func(ctx context.Context, in tenantIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.PurgeTenant(ctx, p, tenant.ID(in.Tenant))
				return t, toolError(err)
			}),
		server.NewTool("purge_due_tenants", "Purge every archived tenant whose retention period has passed, as the server's background job does; returns how many were purged.",
			func(ctx context.Context, _ struct{}) (*purgeDueOut, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				n, err := s.PurgeDue(ctx, p)
				return &purgeDueOut{Purged: n}, toolError(err)
			}),
		server.NewTool("restore_tenant", "Bring a tenant back from its archive in the archive store (the archive field of its record), verifying every checksum first.",
			func(ctx context.Context, in restoreIn) (*registry.Tenant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				t, err := s.RestoreArchive(ctx, p, in.Archive)
				return t, toolError(err)
			}),
		server.NewTool("impersonate_tenant", "Get a short-lived credential that acts as one tenant (read-only tools by default), for a stated reason shown in the tenant's audit trail. Use it as the bearer token; it never carries admin scope.",
			func(ctx context.Context, in impersonateIn) (*Grant, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				d, err := ParseDuration(in.Duration)
				if err != nil {
					return nil, toolError(err)
				}
				g, err := s.Impersonate(ctx, p, ImpersonationRequest{
					Tenant: tenant.ID(in.Tenant), Reason: in.Reason, Ticket: in.Ticket, Scopes: in.Scopes,
					Write: in.Write, Duration: d, User: in.User, IncludeSuspended: in.IncludeSuspended,
				})
				return g, toolError(err)
			}),
		server.NewTool("end_impersonation", "End an impersonation now (yours, or revoke another admin's); its credential is refused from its next request.",
			func(ctx context.Context, in endIn) (*Impersonation, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				g, err := s.EndImpersonation(ctx, p, in.ID)
				return g, toolError(err)
			}),
		server.NewTool("list_impersonations", "List impersonations, newest first: active and past, optionally of one tenant or admin.",
			func(ctx context.Context, in listImpersonationsIn) (*impersonationsOut, error) {
				p, err := principalFrom(ctx, ViaMCP)
				if err != nil {
					return nil, err
				}
				f := ImpersonationFilter{Tenant: tenant.ID(in.Tenant), Admin: in.Admin, Before: in.Before, Limit: in.Limit}
				if in.Active {
					f.ActiveAt = s.o.Now()
				}
				gs, err := s.ListImpersonations(ctx, p, f)
				return &impersonationsOut{Impersonations: orEmpty(gs)}, toolError(err)
			}, server.ReadOnly()),
	}
}

func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
