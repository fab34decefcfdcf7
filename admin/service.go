package admin

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Auditor takes a place in the audit queue for an event (audit.Writer
// implements it). An admin operation runs only once its event has a place,
// so no admin action goes unrecorded.
type Auditor = lifecycle.Auditor

// Principal is who performs an admin operation: the admin's subject and
// issuer, how the operation arrived (ViaMCP, ViaHTTP, ViaCLI, ViaConsole)
// and the request id.
type Principal = lifecycle.Principal

// Channels of Principal.Via.
const (
	ViaMCP     = "mcp"
	ViaHTTP    = "http"
	ViaCLI     = "cli"
	ViaConsole = "console"
)

// CallerError reports whether an operation's error is meant for the admin
// who asked (not found, invalid, conflict, audit unavailable, a problem
// with an archive) rather than an internal error, which callers log and
// show only as "internal error".
func CallerError(err error) bool { return callerError(err) }

// Options configure a Service. Registry and Store are required.
type Options struct {
	// Registry holds the tenant records.
	Registry *registry.Registry
	// Store holds impersonation grants and idempotency keys.
	Store Store
	// Audit records every operation; nil means the deployment has no
	// audit trail (audit.enabled = false).
	Audit Auditor
	// Lifecycle creates tenants (record and storage, resumably), and
	// archives, purges, exports and restores them. Nil: tenants are only
	// registered (no storage to create) and the archive operations are
	// unavailable.
	Lifecycle *lifecycle.Manager
	// Issuer is the issuer new tenants are registered under when a create
	// names none: the deployment's tenant identity provider.
	Issuer string
	// ImpersonationTTL is how long an impersonation lasts when the admin
	// does not say; 0 = DefaultImpersonationTTL. MaxImpersonationTTL is
	// the longest an admin may ask for; 0 = DefaultMaxImpersonationTTL.
	ImpersonationTTL, MaxImpersonationTTL time.Duration
	// ReadOnlyScopes are the scopes an impersonation grants when the admin
	// names none: what the read-only tools need.
	ReadOnlyScopes []string
	// AdminScopes are scopes no impersonation may carry (the admin scope).
	AdminScopes []string
	// Tools are the names of the tools the deployment serves: a tenant's
	// allowed tools must be among them (a typo would silently hide a tool
	// from the tenant). Nil accepts any well-formed name.
	Tools []string
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Logger receives a line per operation; nil discards.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultImpersonationTTL    = 30 * time.Minute
	DefaultMaxImpersonationTTL = 8 * time.Hour
)

// Limits of request fields.
const (
	MaxReasonLen = 1000 // characters
	MaxTicketLen = 200  // characters
)

// CredentialPrefix starts every impersonation credential, so the server
// tells it from a JWT without trying to parse it.
const CredentialPrefix = server.ImpersonationPrefix

// Service is the one implementation of every admin operation; the MCP
// admin tools, the HTTP API and the CLI all call it. Every operation is
// audited: into the target tenant's chain when it names a tenant (so the
// tenant's own trail shows what was done to it and by whom), else into
// audit.SystemChain. The operations that change a tenant hold its
// lifecycle lease while they run (see lifecycle.Manager.Exclusive), so two
// of them on one tenant never interleave, whichever process or replica
// runs them: the second is refused with a *lifecycle.BusyError.
type Service struct {
	o   Options
	log *slog.Logger
}

// NewService validates opts and returns a Service.
func NewService(opts Options) (*Service, error) {
	var errs []error
	if opts.Registry == nil {
		errs = append(errs, errors.New("admin: Registry is required"))
	}
	if opts.Store == nil {
		errs = append(errs, errors.New("admin: Store is required"))
	}
	opts.ImpersonationTTL = cmp.Or(opts.ImpersonationTTL, DefaultImpersonationTTL)
	opts.MaxImpersonationTTL = cmp.Or(opts.MaxImpersonationTTL, DefaultMaxImpersonationTTL)
	if opts.ImpersonationTTL < 0 || opts.MaxImpersonationTTL < 0 {
		errs = append(errs, errors.New("admin: impersonation durations must be positive"))
	}
	if opts.ImpersonationTTL > opts.MaxImpersonationTTL {
		errs = append(errs, fmt.Errorf("admin: ImpersonationTTL %s is longer than MaxImpersonationTTL %s", opts.ImpersonationTTL, opts.MaxImpersonationTTL))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Lifecycle == nil && opts.Registry != nil {
		lc, err := lifecycle.New(lifecycle.Options{Registry: opts.Registry, Audit: opts.Audit, Now: opts.Now, Logger: opts.Logger})
		if err != nil {
			return nil, err
		}
		opts.Lifecycle = lc
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{o: opts, log: log}, nil
}

// Errors of the operations besides the registry's (registry.ErrNotFound,
// registry.ErrExists, registry.ErrInvalid). Classify with errors.Is.
var (
	// ErrIdempotencyConflict: the idempotency key was used for a
	// different request, or that request is still running.
	ErrIdempotencyConflict = errors.New("admin: idempotency key conflict")
	// ErrIdempotencyInProgress: the request with that key is still
	// running; it wraps ErrIdempotencyConflict. Retry shortly.
	ErrIdempotencyInProgress = fmt.Errorf("%w: the request with this key is still running; retry shortly", ErrIdempotencyConflict)
	// ErrInvalidCredential: an impersonation credential that is unknown,
	// ended or expired.
	ErrInvalidCredential = errors.New("impersonation credential is not valid")
)

// invalid returns a validation error (errors.Is registry.ErrInvalid)
// listing problems.
func invalid(problems ...string) error { return &registry.ValidationError{Problems: problems} }

// auditUnavailableError refuses an operation whose audit event has no
// place in the queue.
type auditUnavailableError struct{ err error }

func (e *auditUnavailableError) Error() string {
	return "the action was not done because the audit trail cannot record it right now (" + e.err.Error() + "); retry shortly"
}

func (e *auditUnavailableError) Unwrap() error { return e.err }

func isAuditUnavailable(err error) bool {
	var a *auditUnavailableError
	return errors.As(err, &a)
}

// op is one audited operation in progress.
type op struct {
	s    *Service
	p    Principal
	slot *audit.Slot
	ev   audit.Event
	t0   time.Time
}

// begin reserves the audit event of an operation before it runs: with no
// room in the audit queue the operation is refused (the caller answers
// 503), never run unrecorded.
func (s *Service) begin(ctx context.Context, p Principal, method string) (*op, error) {
	o := &op{s: s, p: p, t0: s.o.Now()}
	if s.o.Audit != nil {
		slot, err := s.o.Audit.Reserve(ctx)
		if err != nil {
			return nil, &auditUnavailableError{err: err}
		}
		o.slot = slot
	}
	o.ev = audit.Event{
		Time:      o.t0,
		RequestID: p.RequestID,
		Kind:      audit.KindAdmin,
		Method:    "admin/" + method,
		Actor:     &audit.Actor{Sub: p.Subject, Issuer: p.Issuer},
		Detail:    map[string]string{"via": p.Via},
	}
	return o, nil
}

// on names the tenant the operation acts on: its event goes to that
// tenant's chain.
func (o *op) on(t *registry.Tenant) {
	if t != nil {
		o.ev.Tenant, o.ev.ExternalID, o.ev.Issuer = string(t.ID), t.ExternalID, t.Issuer
	}
}

func (o *op) detail(k, v string) {
	if v != "" {
		o.ev.Detail[k] = v
	}
}

// end records the outcome and returns err.
func (o *op) end(err error) error {
	o.ev.LatencyMicros = o.s.o.Now().Sub(o.t0).Microseconds()
	o.ev.Outcome = audit.OutcomeOK
	if err != nil {
		o.ev.Outcome, o.ev.ErrorClass = audit.OutcomeError, errorClass(err)
	}
	o.slot.Commit(&o.ev)
	lvl := slog.LevelInfo
	if err != nil {
		lvl = slog.LevelWarn
	}
	o.s.log.Log(context.Background(), lvl, "admin action", "method", o.ev.Method, "admin", o.p.Subject,
		"via", o.p.Via, "tenant_id", o.ev.Tenant, "outcome", o.ev.Outcome, "error_class", o.ev.ErrorClass)
	return err
}

// errorClass names an operation's failure for the audit event.
func errorClass(err error) string {
	switch {
	case errors.Is(err, lifecycle.ErrBusy):
		// Before ErrInvalid and ErrExists, which a BusyError also matches
		// for callers that do not know it.
		return "busy"
	case errors.Is(err, lifecycle.ErrLeaseLost):
		return "lease_lost"
	case errors.Is(err, registry.ErrNotFound), errors.Is(err, ErrNotFound):
		return "not_found"
	case errors.Is(err, registry.ErrInvalid):
		return "invalid"
	case errors.Is(err, registry.ErrExists):
		return "exists"
	case errors.Is(err, ErrIdempotencyConflict):
		return "idempotency_conflict"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, archive.ErrCorrupt), errors.Is(err, archive.ErrLimit), errors.Is(err, archive.ErrUnsupportedVersion):
		return "bad_archive"
	case errors.Is(err, lifecycle.ErrNoArchiveStore):
		return "no_archive_store"
	case errors.Is(err, lifecycle.ErrArchiveMissing), errors.Is(err, store.ErrNotEmpty):
		return "conflict"
	case errors.Is(err, archive.ErrNotFound), errors.Is(err, archive.ErrInvalidName):
		return "not_found"
	}
	return "internal"
}

// SignIn records that p signed in with admin rights (the console's
// sign-in): an admin/sign_in event in the system chain, with p as the
// actor. With no room for the event in the audit trail it fails, as every
// operation does, and the caller refuses the sign-in.
func (s *Service) SignIn(ctx context.Context, p Principal) error {
	o, err := s.begin(ctx, p, "sign_in")
	if err != nil {
		return err
	}
	return o.end(nil)
}

// TenantFilter selects tenants for ListTenants. Zero fields select all.
type TenantFilter struct {
	// Status, if set, selects tenants with that status.
	Status registry.Status
	// Name, if set, selects tenants whose name or external id contains it
	// (case-insensitive).
	Name string
	// TrialEndsBefore, if set, selects trials that end before it and have
	// not ended yet (a reminder of trials ending soon).
	TrialEndsBefore time.Time
	// After is the Next of the previous page.
	After tenant.ID
	// Limit bounds the page: <= 0 means DefaultPageSize, at most
	// MaxPageSize.
	Limit int
}

// TenantPage is a page of ListTenants.
type TenantPage struct {
	Tenants []*registry.Tenant `json:"tenants"`
	// Next, passed as TenantFilter.After, reads the next page; empty on
	// the last.
	Next tenant.ID `json:"next,omitempty"`
}

// pageSize applies the paging defaults and bounds.
func pageSize(limit int) (int, error) {
	switch {
	case limit < 0 || limit > MaxPageSize:
		return 0, invalid(fmt.Sprintf("limit: must be 1 to %d, not %d", MaxPageSize, limit))
	case limit == 0:
		return DefaultPageSize, nil
	}
	return limit, nil
}

// ListTenants returns a page of tenants ordered by id.
func (s *Service) ListTenants(ctx context.Context, p Principal, f TenantFilter) (*TenantPage, error) {
	o, err := s.begin(ctx, p, "list_all_tenants")
	if err != nil {
		return nil, err
	}
	o.detail("status", string(f.Status))
	o.detail("name", f.Name)
	if !f.TrialEndsBefore.IsZero() {
		o.detail("trial_ends_before", f.TrialEndsBefore.UTC().Format(time.RFC3339))
	}
	page, err := s.listTenants(ctx, f)
	return page, o.end(err)
}

func (s *Service) listTenants(ctx context.Context, f TenantFilter) (*TenantPage, error) {
	limit, err := pageSize(f.Limit)
	if err != nil {
		return nil, err
	}
	if f.Status != "" && !f.Status.Valid() {
		return nil, invalid(fmt.Sprintf("status: %q is not a status (%s)", f.Status, statusNames()))
	}
	if f.After != "" && !f.After.Valid() {
		return nil, invalid(fmt.Sprintf("after: %q is not a tenant id", f.After))
	}
	name := strings.ToLower(f.Name)
	now := s.o.Now()
	out := &TenantPage{Tenants: []*registry.Tenant{}}
	after := f.After
	for {
		batch, err := s.o.Registry.Store().List(ctx, after, registry.DefaultPageSize)
		if err != nil {
			return nil, fmt.Errorf("list tenants: %w", err)
		}
		for _, t := range batch {
			after = t.ID
			if f.Status != "" && t.Status != f.Status {
				continue
			}
			if name != "" && !strings.Contains(strings.ToLower(t.Name), name) && !strings.Contains(strings.ToLower(t.ExternalID), name) {
				continue
			}
			if !f.TrialEndsBefore.IsZero() && (t.Status != registry.StatusTrial || !t.TrialEndsAt.Before(f.TrialEndsBefore) || !now.Before(t.TrialEndsAt)) {
				continue
			}
			out.Tenants = append(out.Tenants, t)
			if len(out.Tenants) == limit {
				out.Next = t.ID
				return out, nil
			}
		}
		if len(batch) < registry.DefaultPageSize {
			return out, nil
		}
	}
}

// statusNames lists the statuses, for messages.
func statusNames() string {
	names := make([]string, len(registry.Statuses))
	for i, st := range registry.Statuses {
		names[i] = string(st)
	}
	return strings.Join(names, ", ")
}

// GetTenant returns one tenant's record.
func (s *Service) GetTenant(ctx context.Context, p Principal, id tenant.ID) (*registry.Tenant, error) {
	o, err := s.begin(ctx, p, "get_tenant")
	if err != nil {
		return nil, err
	}
	t, err := s.get(ctx, id)
	o.on(t)
	return t, o.end(err)
}

func (s *Service) get(ctx context.Context, id tenant.ID) (*registry.Tenant, error) {
	if !id.Valid() {
		// Not a registry id: no such tenant (and nothing about others).
		return nil, fmt.Errorf("%w: %q is not a tenant id", registry.ErrNotFound, id)
	}
	return s.o.Registry.Get(ctx, id)
}

// TenantSpec is a new tenant.
type TenantSpec struct {
	// Issuer defaults to Options.Issuer.
	Issuer     string `json:"issuer,omitempty"`
	ExternalID string `json:"external_id"`
	Name       string `json:"name,omitempty"`
	// Status is active (default) or trial; a trial needs TrialDays or
	// TrialEndsAt.
	Status      registry.Status   `json:"status,omitempty"`
	TrialDays   int               `json:"trial_days,omitempty"`
	TrialEndsAt time.Time         `json:"trial_ends_at,omitzero"`
	RateLimit   int               `json:"rate_limit,omitempty"`
	RateBurst   int               `json:"rate_burst,omitempty"`
	Tools       []string          `json:"allowed_tools,omitempty"`
	Flags       map[string]bool   `json:"flags,omitempty"`
	Config      map[string]string `json:"config,omitempty"`
}

// checkTools refuses allowed tools the deployment does not serve.
func (s *Service) checkTools(tools []string) error {
	if s.o.Tools == nil {
		return nil
	}
	var unknown []string
	for _, t := range tools {
		if !slices.Contains(s.o.Tools, t) {
			unknown = append(unknown, strconv.Quote(t))
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	return invalid(fmt.Sprintf("allowed_tools: %s not served here; the tools are: %s", strings.Join(unknown, ", "), strings.Join(s.o.Tools, ", ")))
}

// record turns the spec into a registry record at time now.
func (sp *TenantSpec) record(defaultIssuer string, now time.Time) (registry.Tenant, error) {
	var p []string
	rec := registry.Tenant{
		Issuer: cmp.Or(sp.Issuer, defaultIssuer), ExternalID: sp.ExternalID, Name: sp.Name,
		Status: cmp.Or(sp.Status, registry.StatusActive), TrialEndsAt: sp.TrialEndsAt,
		RateLimit: sp.RateLimit, RateBurst: sp.RateBurst,
		AllowedTools: sp.Tools, Flags: sp.Flags, Config: sp.Config,
	}
	switch {
	case sp.TrialDays < 0:
		p = append(p, fmt.Sprintf("trial_days: must be positive, not %d", sp.TrialDays))
	case sp.TrialDays > 0 && !sp.TrialEndsAt.IsZero():
		p = append(p, "trial_days and trial_ends_at: give one, not both")
	case sp.TrialDays > 0:
		rec.TrialEndsAt = now.AddDate(0, 0, sp.TrialDays)
		if sp.Status == "" {
			rec.Status = registry.StatusTrial
		}
	}
	if rec.Status != registry.StatusActive && rec.Status != registry.StatusTrial {
		p = append(p, fmt.Sprintf("status: a new tenant is active or trial, not %q", rec.Status))
	}
	if rec.Status == registry.StatusTrial && rec.TrialEndsAt.IsZero() {
		p = append(p, "trial: give trial_days or trial_ends_at")
	}
	if len(p) > 0 {
		return rec, invalid(p...)
	}
	return rec, nil
}

// hash is the request hash of an idempotent create.
func (sp *TenantSpec) hash() RequestHash {
	b, _ := json.Marshal(sp) // a struct of plain fields: cannot fail
	return sha256.Sum256(b)
}

// CreateTenant registers a tenant and provisions its storage. With an
// idempotency key, a repeat of the same request (within IdempotencyTTL)
// returns the tenant the first one created, with replayed = true, and
// creates nothing; the same key with a different request fails with
// ErrIdempotencyConflict.
func (s *Service) CreateTenant(ctx context.Context, p Principal, spec TenantSpec, idempotencyKey string) (t *registry.Tenant, replayed bool, err error) {
	o, err := s.begin(ctx, p, "create_tenant")
	if err != nil {
		return nil, false, err
	}
	o.detail("external_id", spec.ExternalID)
	o.detail("idempotency_key", idempotencyKey)
	t, replayed, err = s.create(ctx, p, spec, idempotencyKey)
	o.on(t)
	if replayed {
		o.detail("replayed", "true")
	}
	return t, replayed, o.end(err)
}

// MaxIdempotencyKeyLen bounds an idempotency key.
const MaxIdempotencyKeyLen = 255

func (s *Service) create(ctx context.Context, p Principal, spec TenantSpec, key string) (*registry.Tenant, bool, error) {
	rec, err := spec.record(s.o.Issuer, s.o.Now().UTC())
	if err != nil {
		return nil, false, err
	}
	if err := s.checkTools(rec.AllowedTools); err != nil {
		return nil, false, err
	}
	if key == "" {
		t, err := s.o.Lifecycle.Provision(ctx, p, rec)
		return t, false, err
	}
	if len(key) > MaxIdempotencyKeyLen || !utf8.ValidString(key) || strings.ContainsFunc(key, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, false, invalid(fmt.Sprintf("idempotency key: 1 to %d printable characters", MaxIdempotencyKeyLen))
	}
	h := spec.hash()
	prev, claimed, err := s.o.Store.ClaimIdempotencyKey(ctx, key, h, s.o.Now())
	if err != nil {
		return nil, false, fmt.Errorf("idempotency key: %w", err)
	}
	if !claimed {
		switch {
		case prev.Request != h:
			return nil, false, fmt.Errorf("%w: key %q was used for a different request; use a new key for a new tenant", ErrIdempotencyConflict, key)
		case prev.Tenant == "":
			return nil, false, fmt.Errorf("%w (key %q)", ErrIdempotencyInProgress, key)
		}
		t, err := s.o.Registry.Get(ctx, prev.Tenant)
		if err != nil {
			return nil, false, fmt.Errorf("the tenant created with key %q: %w", key, err)
		}
		return t, true, nil
	}
	t, err := s.o.Lifecycle.Provision(ctx, p, rec)
	if err != nil {
		if rerr := s.o.Store.ReleaseIdempotencyKey(context.WithoutCancel(ctx), key); rerr != nil {
			s.log.Error("admin: could not release an idempotency key after a failed create; retries with it fail until it expires", "key", key, "error", rerr)
		}
		return nil, false, err
	}
	if err := s.o.Store.CompleteIdempotencyKey(context.WithoutCancel(ctx), key, t.ID); err != nil {
		// The tenant exists; a retry finds it by its external id (ErrExists).
		s.log.Error("admin: could not record the tenant an idempotency key created", "key", key, "tenant_id", t.ID, "error", err)
	}
	return t, false, nil
}

// TenantPatch changes a tenant; nil fields stay as they are.
type TenantPatch struct {
	Name *string `json:"name,omitempty"`
	// Status is active or trial (a trial needs a trial end); suspending
	// and resuming are operations of their own.
	Status       *registry.Status   `json:"status,omitempty"`
	RateLimit    *int               `json:"rate_limit,omitempty"`
	RateBurst    *int               `json:"rate_burst,omitempty"`
	AllowedTools *[]string          `json:"allowed_tools,omitempty"`
	TrialEndsAt  *time.Time         `json:"trial_ends_at,omitempty"`
	Flags        map[string]bool    `json:"flags,omitempty"`  // merged; false turns a flag off
	Config       map[string]*string `json:"config,omitempty"` // merged; null removes a key
}

// empty reports whether the patch changes nothing.
func (pt *TenantPatch) empty() bool {
	return pt.Name == nil && pt.Status == nil && pt.RateLimit == nil && pt.RateBurst == nil && pt.AllowedTools == nil &&
		pt.TrialEndsAt == nil && len(pt.Flags) == 0 && len(pt.Config) == 0
}

// fields names the fields the patch changes, for the audit event.
func (pt *TenantPatch) fields() string {
	var f []string
	add := func(set bool, name string) {
		if set {
			f = append(f, name)
		}
	}
	add(pt.Name != nil, "name")
	add(pt.Status != nil, "status")
	add(pt.RateLimit != nil, "rate_limit")
	add(pt.RateBurst != nil, "rate_burst")
	add(pt.AllowedTools != nil, "allowed_tools")
	add(pt.TrialEndsAt != nil, "trial_ends_at")
	add(len(pt.Flags) > 0, "flags")
	add(len(pt.Config) > 0, "config")
	return strings.Join(f, ",")
}

func (pt *TenantPatch) apply(t *registry.Tenant) error {
	if pt.Name != nil {
		t.Name = *pt.Name
	}
	if pt.Status != nil {
		switch st := *pt.Status; {
		case st == t.Status:
		case st == registry.StatusSuspended:
			return invalid("status: use suspend_tenant (tenant suspend) to suspend a tenant, with a reason")
		case t.Status == registry.StatusSuspended:
			return invalid("status: the tenant is suspended; use resume_tenant (tenant resume) to serve it again, with a reason")
		case !servable(t.Status):
			return invalid(fmt.Sprintf("status: a %s tenant's status changes only through the lifecycle (restore_tenant brings an archived or purged tenant back)", t.Status))
		case t.Lifecycle.Operation != "":
			return inProgress(t)
		case st != registry.StatusActive && st != registry.StatusTrial:
			return invalid(fmt.Sprintf("status: %q is not active or trial", st))
		default:
			if err := registry.Transition(t.Status, st); err != nil {
				return err
			}
			t.Status = st
		}
	}
	if pt.RateLimit != nil {
		t.RateLimit = *pt.RateLimit
	}
	if pt.RateBurst != nil {
		t.RateBurst = *pt.RateBurst
	}
	if pt.AllowedTools != nil {
		t.AllowedTools = slices.Clone(*pt.AllowedTools)
	}
	if pt.TrialEndsAt != nil {
		t.TrialEndsAt = *pt.TrialEndsAt
	}
	for k, v := range pt.Flags {
		if t.Flags == nil {
			t.Flags = map[string]bool{}
		}
		if v {
			t.Flags[k] = true
		} else {
			delete(t.Flags, k)
		}
	}
	for k, v := range pt.Config {
		if v == nil {
			delete(t.Config, k)
			continue
		}
		if t.Config == nil {
			t.Config = map[string]string{}
		}
		t.Config[k] = *v
	}
	return nil
}

// UpdateTenant applies patch to a tenant. Every problem is reported at
// once and nothing is changed.
func (s *Service) UpdateTenant(ctx context.Context, p Principal, id tenant.ID, patch TenantPatch) (*registry.Tenant, error) {
	o, err := s.begin(ctx, p, "update_tenant")
	if err != nil {
		return nil, err
	}
	o.detail("fields", patch.fields())
	t, err := s.exclusive(ctx, o, p, id, "update", func(t *registry.Tenant) error {
		if patch.empty() {
			return invalid("nothing to change: give at least one field")
		}
		if patch.AllowedTools != nil {
			if err := s.checkTools(*patch.AllowedTools); err != nil {
				return err
			}
		}
		return patch.apply(t)
	})
	return t, o.end(err)
}

// exclusive is the read-modify-write of one tenant, naming it in o, while
// holding the tenant's lease for operation name (see
// lifecycle.Manager.Exclusive): it is refused while a lifecycle operation
// or another change runs on the tenant, in this process or any other that
// shares the registry, rather than overwrite what that one writes.
func (s *Service) exclusive(ctx context.Context, o *op, p Principal, id tenant.ID, name string, fn func(*registry.Tenant) error) (*registry.Tenant, error) {
	cur, err := s.get(ctx, id)
	if err != nil {
		return nil, err
	}
	o.on(cur)
	var out *registry.Tenant
	err = s.o.Lifecycle.Exclusive(ctx, p, cur, name, func(ctx context.Context) error {
		var err error
		out, err = s.update(ctx, o, id, fn)
		return err
	})
	return out, err
}

// update is the read-modify-write of one tenant, naming it in o.
func (s *Service) update(ctx context.Context, o *op, id tenant.ID, fn func(*registry.Tenant) error) (*registry.Tenant, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("%w: %q is not a tenant id", registry.ErrNotFound, id)
	}
	var seen *registry.Tenant
	t, err := s.o.Registry.Update(ctx, id, func(t *registry.Tenant) error {
		seen = t.Clone()
		return fn(t)
	})
	if t != nil {
		o.on(t)
	} else {
		o.on(seen)
	}
	return t, err
}

// SuspendTenant refuses every request of the tenant from now on (on every
// replica: see the registry's change propagation). reason is recorded.
func (s *Service) SuspendTenant(ctx context.Context, p Principal, id tenant.ID, reason string) (*registry.Tenant, error) {
	return s.setStatus(ctx, p, id, "suspend_tenant", registry.StatusSuspended, reason)
}

// ResumeTenant serves a suspended tenant again (status active).
func (s *Service) ResumeTenant(ctx context.Context, p Principal, id tenant.ID, reason string) (*registry.Tenant, error) {
	return s.setStatus(ctx, p, id, "resume_tenant", registry.StatusActive, reason)
}

func (s *Service) setStatus(ctx context.Context, p Principal, id tenant.ID, method string, st registry.Status, reason string) (*registry.Tenant, error) {
	o, err := s.begin(ctx, p, method)
	if err != nil {
		return nil, err
	}
	o.detail("reason", reason)
	t, err := s.exclusive(ctx, o, p, id, strings.TrimSuffix(method, "_tenant"), func(t *registry.Tenant) error {
		if err := checkText("reason", reason, MaxReasonLen); err != nil {
			return err
		}
		o.detail("previous_status", string(t.Status))
		switch {
		case t.Lifecycle.Operation != "":
			return inProgress(t)
		case st == registry.StatusActive && (t.Status == registry.StatusActive || t.Status == registry.StatusTrial):
			return nil // served already: resuming changes nothing
		case st == registry.StatusActive && t.Status != registry.StatusSuspended:
			return invalid(fmt.Sprintf("status: a %s tenant cannot be resumed (only a suspended one)", t.Status))
		case st == registry.StatusSuspended && !servable(t.Status):
			// Archived and purged tenants come back only through a
			// restore: a suspension would take them out of the purge
			// schedule, and a resume would serve a purged tenant empty.
			return invalid(fmt.Sprintf("status: a %s tenant cannot be suspended (only an active or trial one)", t.Status))
		}
		if err := registry.Transition(t.Status, st); err != nil {
			return err
		}
		t.Status = st
		return nil
	})
	return t, o.end(err)
}

// servable reports whether st is a status an admin may change by
// suspending, resuming or updating: active, trial or suspended. The
// others change only through the lifecycle (provisioning, archive,
// purge, restore).
func servable(st registry.Status) bool {
	return st == registry.StatusActive || st == registry.StatusTrial || st == registry.StatusSuspended
}

// inProgress refuses a status change while a lifecycle operation runs
// (or was interrupted) on t.
func inProgress(t *registry.Tenant) error {
	return invalid(fmt.Sprintf("status: the tenant's %s is in progress (step %s); it must finish first", t.Lifecycle.Operation, t.Lifecycle.Step))
}

// DeleteTenant deletes a tenant: its requests are refused at once, its
// data is archived and purged after the retention period (at once with
// purgeNow), and then its registration is removed, so a tenant added
// later with the same external id is a new tenant (a new internal id)
// that never sees the old data unless an operator restores the archive.
func (s *Service) DeleteTenant(ctx context.Context, p Principal, id tenant.ID, purgeNow bool) (*registry.Tenant, error) {
	return s.lifecycleOp(ctx, p, id, "delete_tenant", func(ctx context.Context, p Principal) (*registry.Tenant, error) {
		return s.o.Lifecycle.Delete(ctx, p, id, purgeNow)
	}, map[string]string{"purge_now": strconv.FormatBool(purgeNow)})
}

// ArchiveTenant suspends a tenant and writes all of its data into an
// archive; the data is purged after the retention period.
func (s *Service) ArchiveTenant(ctx context.Context, p Principal, id tenant.ID) (*registry.Tenant, error) {
	return s.lifecycleOp(ctx, p, id, "archive_tenant", func(ctx context.Context, p Principal) (*registry.Tenant, error) {
		return s.o.Lifecycle.Archive(ctx, p, id)
	}, nil)
}

// PurgeTenant removes an archived tenant's data from every backend now.
func (s *Service) PurgeTenant(ctx context.Context, p Principal, id tenant.ID) (*registry.Tenant, error) {
	return s.lifecycleOp(ctx, p, id, "purge_tenant", func(ctx context.Context, p Principal) (*registry.Tenant, error) {
		return s.o.Lifecycle.Purge(ctx, p, id)
	}, nil)
}

// lifecycleOp runs a lifecycle operation on one tenant as an audited
// admin operation.
func (s *Service) lifecycleOp(ctx context.Context, p Principal, id tenant.ID, method string, run func(context.Context, Principal) (*registry.Tenant, error), detail map[string]string) (*registry.Tenant, error) {
	o, err := s.begin(ctx, p, method)
	if err != nil {
		return nil, err
	}
	for k, v := range detail {
		o.detail(k, v)
	}
	before, err := s.get(ctx, id)
	o.on(before)
	if err != nil {
		return nil, o.end(err)
	}
	t, err := run(ctx, p)
	if t != nil {
		o.detail("status", string(t.Status))
		o.detail("archive", t.Lifecycle.Archive)
	}
	return t, o.end(err)
}

// PurgeDue purges every archived tenant whose retention has passed.
func (s *Service) PurgeDue(ctx context.Context, p Principal) (int, error) {
	o, err := s.begin(ctx, p, "purge_due")
	if err != nil {
		return 0, err
	}
	n, err := s.o.Lifecycle.PurgeDue(ctx, p)
	o.detail("purged", strconv.Itoa(n))
	return n, o.end(err)
}

// ExportTenant writes a tenant's archive to w without changing anything
// (a customer's data-export request).
func (s *Service) ExportTenant(ctx context.Context, p Principal, id tenant.ID, w io.Writer) error {
	_, err := s.lifecycleOp(ctx, p, id, "export_tenant", func(ctx context.Context, p Principal) (*registry.Tenant, error) {
		return nil, s.o.Lifecycle.Export(ctx, p, id, w)
	}, nil)
	return err
}

// RestoreTenant brings a tenant back from an archive read from r, after
// verifying every part's checksum (and, if sha256 is not empty, the whole
// file's).
func (s *Service) RestoreTenant(ctx context.Context, p Principal, r io.Reader, sha256 string) (*registry.Tenant, error) {
	return s.restore(ctx, p, "", func() (*registry.Tenant, error) { return s.o.Lifecycle.Restore(ctx, p, r, sha256) })
}

// RestoreArchive restores from the archive named name in the archive
// store (a tenant's Lifecycle.Archive), checked against the SHA-256
// stored beside it.
func (s *Service) RestoreArchive(ctx context.Context, p Principal, name string) (*registry.Tenant, error) {
	return s.restore(ctx, p, name, func() (*registry.Tenant, error) { return s.o.Lifecycle.RestoreArchive(ctx, p, name) })
}

func (s *Service) restore(ctx context.Context, p Principal, name string, run func() (*registry.Tenant, error)) (*registry.Tenant, error) {
	o, err := s.begin(ctx, p, "restore_tenant")
	if err != nil {
		return nil, err
	}
	o.detail("archive", name)
	t, err := run()
	o.on(t)
	return t, o.end(err)
}

// checkText checks a free-text field: valid UTF-8, no control characters
// but newlines and tabs, at most max characters.
func checkText(field, v string, max int) error {
	switch {
	case !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 && r != '\n' && r != '\t' || r == 0x7f }):
		return invalid(field + ": must be text without control characters")
	case utf8.RuneCountInString(v) > max:
		return invalid(fmt.Sprintf("%s: at most %d characters", field, max))
	}
	return nil
}

// ImpersonationRequest asks for a credential acting as one tenant.
type ImpersonationRequest struct {
	Tenant tenant.ID `json:"tenant"`
	// Reason is required: it is shown in the tenant's audit trail.
	Reason string `json:"reason"`
	// Ticket is an optional support ticket reference.
	Ticket string `json:"ticket,omitempty"`
	// Scopes the credential grants; empty = Options.ReadOnlyScopes. Never
	// an admin scope.
	Scopes []string `json:"scopes,omitempty"`
	// Write also allows tools not marked read-only.
	Write bool `json:"write,omitempty"`
	// Duration; 0 = Options.ImpersonationTTL, at most
	// Options.MaxImpersonationTTL.
	Duration time.Duration `json:"duration,omitempty"`
	// User is the user id inside the tenant the requests are made as;
	// "" = "impersonator:" + the admin's subject.
	User string `json:"user,omitempty"`
	// IncludeSuspended allows impersonating a suspended tenant (support
	// for a locked-out customer).
	IncludeSuspended bool `json:"include_suspended,omitempty"`
}

// Grant is a started impersonation: the stored grant and the credential,
// which is shown once and never stored.
type Grant struct {
	*Impersonation
	Credential string `json:"credential"`
}

// Impersonate starts an impersonation of one tenant.
func (s *Service) Impersonate(ctx context.Context, p Principal, req ImpersonationRequest) (*Grant, error) {
	o, err := s.begin(ctx, p, "impersonate_tenant")
	if err != nil {
		return nil, err
	}
	o.detail("reason", req.Reason)
	o.detail("ticket", req.Ticket)
	if req.IncludeSuspended {
		o.detail("include_suspended", "true")
	}
	g, err := s.impersonate(ctx, o, p, req)
	if g != nil {
		o.detail("impersonation_id", g.ID)
		o.detail("expires_at", g.ExpiresAt.Format(time.RFC3339))
		o.detail("scopes", strings.Join(g.Scopes, " "))
	}
	return g, o.end(err)
}

func (s *Service) impersonate(ctx context.Context, o *op, p Principal, req ImpersonationRequest) (*Grant, error) {
	var problems []string
	if strings.TrimSpace(req.Reason) == "" {
		problems = append(problems, "reason: required (it is shown in the tenant's audit trail)")
	} else if err := checkText("reason", req.Reason, MaxReasonLen); err != nil {
		problems = append(problems, err.(*registry.ValidationError).Problems...)
	}
	if err := checkText("ticket", req.Ticket, MaxTicketLen); err != nil {
		problems = append(problems, err.(*registry.ValidationError).Problems...)
	}
	if err := checkText("user", req.User, registry.MaxExternalIDLen); err != nil {
		problems = append(problems, err.(*registry.ValidationError).Problems...)
	}
	d := cmp.Or(req.Duration, s.o.ImpersonationTTL)
	if d < time.Minute || d > s.o.MaxImpersonationTTL {
		problems = append(problems, fmt.Sprintf("duration: 1m to %s, not %s", s.o.MaxImpersonationTTL, d))
	}
	scopes := req.Scopes
	if len(scopes) == 0 {
		scopes = s.o.ReadOnlyScopes
	}
	for _, sc := range scopes {
		if slices.Contains(s.o.AdminScopes, sc) {
			problems = append(problems, fmt.Sprintf("scopes: %q is an admin scope; an impersonation never carries one", sc))
		}
		if sc == "" || strings.ContainsFunc(sc, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			problems = append(problems, fmt.Sprintf("scopes: %q is not a scope", sc))
		}
	}
	if len(problems) > 0 {
		return nil, invalid(problems...)
	}
	t, err := s.get(ctx, req.Tenant)
	o.on(t)
	if err != nil {
		return nil, err
	}
	if t.Status == registry.StatusSuspended && !req.IncludeSuspended {
		return nil, invalid("tenant: it is suspended; ask with include_suspended (--include-suspended in the CLI) to act on a suspended tenant")
	}
	if !servable(t.Status) {
		return nil, invalid(fmt.Sprintf("tenant: it is %s: every request of it is refused, so an impersonation could do nothing", t.Status))
	}
	cred, h := newCredential()
	now := s.o.Now().UTC().Truncate(time.Microsecond)
	g := &Impersonation{
		ID: "imp_" + randomText(10), TokenHash: h, Tenant: t.ID,
		Admin: p.Subject, AdminIssuer: p.Issuer,
		User:   cmp.Or(req.User, "impersonator:"+p.Subject),
		Reason: req.Reason, Ticket: req.Ticket, Scopes: slices.Clone(scopes),
		ReadOnly: !req.Write, IncludeSuspended: req.IncludeSuspended,
		CreatedAt: now, ExpiresAt: now.Add(d),
	}
	if len(g.Scopes) == 0 {
		g.Scopes = nil
	}
	if err := s.o.Store.CreateImpersonation(ctx, g); err != nil {
		return nil, fmt.Errorf("store impersonation: %w", err)
	}
	return &Grant{Impersonation: g, Credential: cred}, nil
}

// EndImpersonation ends a grant before it expires; it takes effect on the
// grant's next request. Ending an ended grant changes nothing.
func (s *Service) EndImpersonation(ctx context.Context, p Principal, id string) (*Impersonation, error) {
	o, err := s.begin(ctx, p, "end_impersonation")
	if err != nil {
		return nil, err
	}
	o.detail("impersonation_id", id)
	g, err := s.o.Store.Impersonation(ctx, id)
	if err == nil {
		t, gerr := s.o.Registry.Get(ctx, g.Tenant)
		if gerr == nil {
			o.on(t)
		} else {
			o.ev.Tenant = string(g.Tenant) // a deleted tenant's trail still gets it
		}
		if g.Admin != p.Subject {
			o.detail("revoked_admin", g.Admin)
		}
		g, err = s.o.Store.EndImpersonation(ctx, id, p.Subject, s.o.Now().UTC())
	}
	return g, o.end(err)
}

// ListImpersonations returns grants, newest first.
func (s *Service) ListImpersonations(ctx context.Context, p Principal, f ImpersonationFilter) ([]*Impersonation, error) {
	o, err := s.begin(ctx, p, "list_impersonations")
	if err != nil {
		return nil, err
	}
	if f.Limit, err = pageSize(f.Limit); err != nil {
		return nil, o.end(err)
	}
	gs, err := s.o.Store.ListImpersonations(ctx, f)
	return gs, o.end(err)
}

// Impersonated is what an impersonation credential stands for.
type Impersonated struct {
	Grant  *Impersonation
	Tenant *registry.Tenant
}

// Authenticate checks an impersonation credential at the time of a
// request: unknown, ended and expired credentials fail with
// ErrInvalidCredential. It reads the store every time, so an ended grant
// fails on its next request.
func (s *Service) Authenticate(ctx context.Context, credential string) (*Impersonated, error) {
	if !strings.HasPrefix(credential, CredentialPrefix) {
		return nil, ErrInvalidCredential
	}
	g, err := s.o.Store.ImpersonationByToken(ctx, sha256.Sum256([]byte(credential)))
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, ErrInvalidCredential
	case err != nil:
		return nil, fmt.Errorf("impersonation: %w", err)
	case !g.EndedAt.IsZero():
		return nil, fmt.Errorf("%w: the impersonation was ended", ErrInvalidCredential)
	case !s.o.Now().Before(g.ExpiresAt):
		return nil, fmt.Errorf("%w: the impersonation expired", ErrInvalidCredential)
	}
	t, err := s.o.Registry.Get(ctx, g.Tenant)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, fmt.Errorf("%w: the tenant no longer exists", ErrInvalidCredential)
	}
	if err != nil {
		return nil, err
	}
	return &Impersonated{Grant: g, Tenant: t}, nil
}

// AuthenticateImpersonation implements server.ImpersonationAuthenticator
// with Authenticate: an unknown, ended or expired credential is an
// invalid token (401).
func (s *Service) AuthenticateImpersonation(ctx context.Context, credential string) (*server.Impersonation, error) {
	imp, err := s.Authenticate(ctx, credential)
	if errors.Is(err, ErrInvalidCredential) {
		return nil, &auth.TokenError{Reason: err.Error()}
	}
	if err != nil {
		return nil, err
	}
	g := imp.Grant
	return &server.Impersonation{
		ID: g.ID, Tenant: imp.Tenant, User: g.User, Scopes: g.Scopes,
		ReadOnly: g.ReadOnly, IncludeSuspended: g.IncludeSuspended,
		Actor: audit.Actor{Sub: g.Admin, Issuer: g.AdminIssuer},
	}, nil
}

// newCredential returns a fresh credential and its hash.
func newCredential() (string, TokenHash) {
	c := CredentialPrefix + randomText(32)
	return c, sha256.Sum256([]byte(c))
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// randomText returns n random bytes as lower-case base32.
func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return strings.ToLower(b32.EncodeToString(b))
}
