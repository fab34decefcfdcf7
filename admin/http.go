package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// The admin HTTP API, for sign-up and billing systems: JSON over HTTP
// under server.AdminAPIPath, documented in docs/admin-api.yaml (OpenAPI
// 3.1). The server authenticates every request (admins only) before it
// reaches these handlers.

// IdempotencyKeyHeader names the header of an idempotent create.
const IdempotencyKeyHeader = "Idempotency-Key"

// maxAPIBody bounds a request body of the admin API.
const maxAPIBody = 1 << 20

// Handler returns the admin HTTP API over s, to be served by the server
// (server.AdminOptions.API).
func Handler(s *Service) http.Handler {
	h := &api{s: s}
	mux := http.NewServeMux()
	p := strings.TrimSuffix(server.AdminAPIPath, "/")
	mux.HandleFunc("GET "+p+"/tenants", h.handle(h.listTenants))
	mux.HandleFunc("POST "+p+"/tenants", h.handle(h.createTenant))
	mux.HandleFunc("GET "+p+"/tenants/{id}", h.handle(h.getTenant))
	mux.HandleFunc("PATCH "+p+"/tenants/{id}", h.handle(h.updateTenant))
	mux.HandleFunc("DELETE "+p+"/tenants/{id}", h.handle(h.deleteTenant))
	mux.HandleFunc("POST "+p+"/tenants/{id}/suspend", h.handle(h.suspendTenant))
	mux.HandleFunc("POST "+p+"/tenants/{id}/resume", h.handle(h.resumeTenant))
	mux.HandleFunc("POST "+p+"/tenants/{id}/impersonations", h.handle(h.impersonate))
	mux.HandleFunc("POST "+p+"/tenants/{id}/archive", h.handle(h.archiveTenant))
	mux.HandleFunc("POST "+p+"/tenants/{id}/purge", h.handle(h.purgeTenant))
	mux.HandleFunc("GET "+p+"/tenants/{id}/export", h.exportTenant)
	mux.HandleFunc("POST "+p+"/restore", h.handle(h.restore))
	mux.HandleFunc("POST "+p+"/purge-due", h.handle(h.purgeDue))
	mux.HandleFunc("GET "+p+"/impersonations", h.handle(h.listImpersonations))
	mux.HandleFunc("POST "+p+"/impersonations/{id}/end", h.handle(h.endImpersonation))
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		server.WriteAPIError(w, http.StatusNotFound, "not_found", "no such admin API endpoint: see docs/admin-api.yaml")
	})
	return mux
}

type api struct{ s *Service }

// busyRetryAfter is the Retry-After of a refusal because another
// operation holds the tenant, in seconds.
const busyRetryAfter = "5"

// fail answers an operation's error.
func fail(w http.ResponseWriter, err error) {
	var v *registry.ValidationError
	switch {
	case errors.Is(err, lifecycle.ErrBusy) && !errors.Is(err, registry.ErrExists):
		// Another operation holds the tenant (a refused create is
		// "exists", below). A lease is renewed while its operation runs,
		// so the wait is the operation's length: a few seconds is a
		// reasonable first retry.
		w.Header().Set("Retry-After", busyRetryAfter)
		server.WriteAPIError(w, http.StatusConflict, "busy", err.Error())
	case errors.Is(err, lifecycle.ErrLeaseLost):
		w.Header().Set("Retry-After", busyRetryAfter)
		server.WriteAPIError(w, http.StatusConflict, "lease_lost", err.Error())
	case errors.As(err, &v):
		server.WriteAPIError(w, http.StatusBadRequest, "invalid_request", strings.Join(v.Problems, "; "))
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, ErrNotFound):
		server.WriteAPIError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, registry.ErrExists):
		server.WriteAPIError(w, http.StatusConflict, "exists", err.Error())
	case errors.Is(err, ErrIdempotencyInProgress):
		w.Header().Set("Retry-After", "1")
		server.WriteAPIError(w, http.StatusConflict, "idempotency_conflict", err.Error())
	case errors.Is(err, ErrIdempotencyConflict):
		server.WriteAPIError(w, http.StatusConflict, "idempotency_conflict", err.Error())
	case errors.Is(err, store.ErrNotEmpty), errors.Is(err, lifecycle.ErrArchiveMissing):
		server.WriteAPIError(w, http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrLimit), errors.Is(err, archive.ErrUnsupportedVersion):
		server.WriteAPIError(w, http.StatusUnprocessableEntity, "bad_archive", err.Error())
	case errors.Is(err, lifecycle.ErrNoArchiveStore):
		server.WriteAPIError(w, http.StatusNotImplemented, "no_archive_store", err.Error())
	case errors.Is(err, archive.ErrInvalidName), errors.Is(err, archive.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		server.WriteAPIError(w, http.StatusNotFound, "not_found", err.Error())
	case isAuditUnavailable(err):
		w.Header().Set("Retry-After", "1")
		server.WriteAPIError(w, http.StatusServiceUnavailable, "audit_unavailable", err.Error())
	default:
		server.WriteAPIError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body into v, refusing unknown fields and trailing
// data; an empty body leaves v as it is when optional.
func decode(r *http.Request, v any, optional bool) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxAPIBody+1))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	switch {
	case errors.Is(err, io.EOF) && optional:
		return nil
	case errors.Is(err, io.EOF):
		return invalid("body: a JSON object is required")
	case err != nil:
		return invalid("body: " + err.Error())
	case dec.More():
		return invalid("body: one JSON object, nothing after it")
	}
	return nil
}

// limitParam parses the limit query parameter.
func limitParam(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, invalid(fmt.Sprintf("limit: %q is not a number from 1 to %d", v, MaxPageSize))
	}
	return n, nil
}

// handle serves an operation to the admin the server authenticated:
// the operation's status and result as JSON, or its error.
func (h *api) handle(op func(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, ok := h.principal(w, r)
		if !ok {
			return
		}
		status, v, err := op(w, r, p)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, status, v)
	}
}

func (h *api) principal(w http.ResponseWriter, r *http.Request) (Principal, bool) {
	p, err := principalFrom(r.Context(), ViaHTTP)
	if err != nil {
		fail(w, err)
		return p, false
	}
	return p, true
}

func (h *api) listTenants(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	limit, err := limitParam(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	f := TenantFilter{Status: registry.Status(q.Get("status")), Name: q.Get("name"), After: tenant.ID(q.Get("after")), Limit: limit}
	if v := q.Get("trial_ends_before"); v != "" {
		if f.TrialEndsBefore, err = time.Parse(time.RFC3339, v); err != nil {
			return 0, nil, invalid(fmt.Sprintf("trial_ends_before: %q is not an RFC 3339 time (2026-12-31T00:00:00Z)", v))
		}
	}
	page, err := h.s.ListTenants(r.Context(), p, f)
	return http.StatusOK, page, err
}

func (h *api) createTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var spec TenantSpec
	if err := decode(r, &spec, false); err != nil {
		return 0, nil, err
	}
	t, replayed, err := h.s.CreateTenant(r.Context(), p, spec, r.Header.Get(IdempotencyKeyHeader))
	if err != nil {
		return 0, nil, err
	}
	w.Header().Set("Location", server.AdminAPIPath+"tenants/"+string(t.ID))
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
		return http.StatusOK, t, nil
	}
	return http.StatusCreated, t, nil
}

func (h *api) getTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	t, err := h.s.GetTenant(r.Context(), p, tenant.ID(r.PathValue("id")))
	return http.StatusOK, t, err
}

func (h *api) updateTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var patch TenantPatch
	if err := decode(r, &patch, false); err != nil {
		return 0, nil, err
	}
	t, err := h.s.UpdateTenant(r.Context(), p, tenant.ID(r.PathValue("id")), patch)
	return http.StatusOK, t, err
}

func (h *api) deleteTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var purgeNow bool
	switch v := r.URL.Query().Get("purge_now"); v {
	case "", "false":
	case "true":
		purgeNow = true
	default:
		return 0, nil, invalid("purge_now: true or false")
	}
	t, err := h.s.DeleteTenant(r.Context(), p, tenant.ID(r.PathValue("id")), purgeNow)
	return http.StatusOK, t, err
}

type reasonBody struct {
	Reason string `json:"reason,omitempty"`
}

func (h *api) suspendTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	return h.setStatus(r, p, h.s.SuspendTenant)
}

func (h *api) resumeTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	return h.setStatus(r, p, h.s.ResumeTenant)
}

func (h *api) setStatus(r *http.Request, p Principal, op func(ctx context.Context, p Principal, id tenant.ID, reason string) (*registry.Tenant, error)) (int, any, error) {
	var b reasonBody
	if err := decode(r, &b, true); err != nil {
		return 0, nil, err
	}
	t, err := op(r.Context(), p, tenant.ID(r.PathValue("id")), b.Reason)
	return http.StatusOK, t, err
}

// impersonateBody is ImpersonationRequest with the duration as text.
type impersonateBody struct {
	Reason           string   `json:"reason"`
	Ticket           string   `json:"ticket,omitempty"`
	Scopes           []string `json:"scopes,omitempty"`
	Write            bool     `json:"write,omitempty"`
	Duration         string   `json:"duration,omitempty"`
	User             string   `json:"user,omitempty"`
	IncludeSuspended bool     `json:"include_suspended,omitempty"`
}

func (h *api) impersonate(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	var b impersonateBody
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	d, err := ParseDuration(b.Duration)
	if err != nil {
		return 0, nil, err
	}
	g, err := h.s.Impersonate(r.Context(), p, ImpersonationRequest{
		Tenant: tenant.ID(r.PathValue("id")), Reason: b.Reason, Ticket: b.Ticket, Scopes: b.Scopes,
		Write: b.Write, Duration: d, User: b.User, IncludeSuspended: b.IncludeSuspended,
	})
	return http.StatusCreated, g, err
}

func (h *api) listImpersonations(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	limit, err := limitParam(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	f := ImpersonationFilter{Tenant: tenant.ID(q.Get("tenant")), Admin: q.Get("admin"), Before: q.Get("before"), Limit: limit}
	switch q.Get("active") {
	case "", "false":
	case "true":
		f.ActiveAt = h.s.o.Now()
	default:
		return 0, nil, invalid("active: true or false")
	}
	gs, err := h.s.ListImpersonations(r.Context(), p, f)
	return http.StatusOK, impersonationsOut{Impersonations: orEmpty(gs)}, err
}

func (h *api) endImpersonation(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	g, err := h.s.EndImpersonation(r.Context(), p, r.PathValue("id"))
	return http.StatusOK, g, err
}

func (h *api) archiveTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	t, err := h.s.ArchiveTenant(r.Context(), p, tenant.ID(r.PathValue("id")))
	return http.StatusOK, t, err
}

func (h *api) purgeTenant(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	t, err := h.s.PurgeTenant(r.Context(), p, tenant.ID(r.PathValue("id")))
	return http.StatusOK, t, err
}

// exportTenant streams the tenant's archive. An error before the first
// byte is answered as usual; one after it cuts the stream, which the
// archive's manifest (written last) lets the client notice.
func (h *api) exportTenant(w http.ResponseWriter, r *http.Request) {
	p, ok := h.principal(w, r)
	if !ok {
		return
	}
	id := tenant.ID(r.PathValue("id"))
	sw := &startWriter{w: w, name: string(id) + ".tar.gz"}
	if err := h.s.ExportTenant(r.Context(), p, id, sw); err != nil {
		if !sw.started {
			fail(w, err)
			return
		}
		panic(http.ErrAbortHandler) // a half-sent archive must not look complete
	}
}

// startWriter sets the archive's headers on the first write.
type startWriter struct {
	w       http.ResponseWriter
	name    string
	started bool
}

func (s *startWriter) Write(b []byte) (int, error) {
	if !s.started {
		s.started = true
		s.w.Header().Set("Content-Type", "application/gzip")
		s.w.Header().Set("Content-Disposition", `attachment; filename="`+s.name+`"`)
		s.w.Header().Set("Cache-Control", "no-store")
	}
	return s.w.Write(b)
}

type restoreBody struct {
	Archive string `json:"archive"`
}

// archiveTypes are the Content-Types of an uploaded archive
// (application/x-gzip is what http.DetectContentType says of one).
var archiveTypes = []string{"application/gzip", "application/x-gzip", "application/octet-stream"}

// restore restores from the archive the body is (Content-Type
// application/gzip), or from the archive store ({"archive": name}).
func (h *api) restore(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); slices.Contains(archiveTypes, mt) {
		t, err := h.s.RestoreTenant(r.Context(), p, http.MaxBytesReader(w, r.Body, maxRestoreBody), r.URL.Query().Get("sha256"))
		return http.StatusOK, t, err
	}
	var b restoreBody
	if err := decode(r, &b, false); err != nil {
		return 0, nil, err
	}
	if b.Archive == "" {
		return 0, nil, invalid("archive: the archive's name in the archive store is required (or send the archive itself as application/gzip)")
	}
	t, err := h.s.RestoreArchive(r.Context(), p, b.Archive)
	return http.StatusOK, t, err
}

// maxRestoreBody bounds an archive uploaded to restore.
const maxRestoreBody = 64 << 30

type purgeDueOut struct {
	Purged int `json:"purged"`
}

func (h *api) purgeDue(w http.ResponseWriter, r *http.Request, p Principal) (int, any, error) {
	n, err := h.s.PurgeDue(r.Context(), p)
	return http.StatusOK, purgeDueOut{Purged: n}, err
}
