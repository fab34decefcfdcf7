package registry

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Status is a tenant's lifecycle state.
type Status string

// Statuses: the tenant lifecycle
//
//	provisioning → active | trial → suspended → archived → purged
//
// (see Transition for every allowed step).
const (
	// StatusProvisioning: the tenant's storage is being created; requests
	// are refused with ErrProvisioning until it is done.
	StatusProvisioning Status = "provisioning"
	// StatusActive: requests are served.
	StatusActive Status = "active"
	// StatusTrial: requests are served until TrialEndsAt, then refused
	// with ErrTrialExpired.
	StatusTrial Status = "trial"
	// StatusSuspended: every request is refused with ErrSuspended.
	StatusSuspended Status = "suspended"
	// StatusArchived: the tenant's data has been written to an archive
	// (Lifecycle.Archive) and is purged after Lifecycle.PurgeAfter;
	// requests are refused with ErrArchived.
	StatusArchived Status = "archived"
	// StatusPurged: every trace of the tenant's data is gone; the record
	// remains so that the tenant's history (and archive) can be found.
	// Requests are refused with ErrArchived.
	StatusPurged Status = "purged"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{StatusProvisioning, StatusActive, StatusTrial, StatusSuspended, StatusArchived, StatusPurged}

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool { return slices.Contains(Statuses, s) }

// transitions are the lifecycle's allowed steps (besides staying put).
var transitions = map[Status][]Status{
	StatusProvisioning: {StatusActive, StatusTrial},
	StatusActive:       {StatusTrial, StatusSuspended, StatusArchived},
	StatusTrial:        {StatusActive, StatusSuspended, StatusArchived},
	StatusSuspended:    {StatusActive, StatusTrial, StatusArchived},
	StatusArchived:     {StatusPurged, StatusActive, StatusTrial, StatusSuspended}, // back out of an archive: a restore
	StatusPurged:       {StatusActive, StatusTrial, StatusSuspended},               // a restore from the archive
}

// Transition reports whether a tenant may go from status from to status
// to: nil, or an error (ErrInvalid) saying which steps are allowed.
func Transition(from, to Status) error {
	if from == to || slices.Contains(transitions[from], to) {
		return nil
	}
	allowed := make([]string, len(transitions[from]))
	for i, s := range transitions[from] {
		allowed[i] = string(s)
	}
	return &ValidationError{Problems: []string{fmt.Sprintf("status: a %s tenant cannot become %s (it can become: %s)", from, to, strings.Join(allowed, ", "))}}
}

// Lifecycle is where a tenant is in its lifecycle beyond its status: the
// step of an operation in progress (persisted before the step runs, so an
// interrupted operation resumes where it stopped) and its archive.
type Lifecycle struct {
	// Operation and Step name the lifecycle operation in progress and the
	// step it is at ("provision"/"schema", "purge"/"blobs", ...); empty
	// when none is.
	Operation string `json:"operation,omitempty"`
	Step      string `json:"step,omitempty"`
	// Target is the status the operation ends in: a provisioned tenant's
	// (active or trial), or an archived tenant's status before it was
	// archived, which a restore brings back.
	Target Status `json:"target,omitempty"`
	// Deleted marks a tenant deleted by an operator: archived, and its
	// registration removed once its data is purged, so that its external
	// id can be registered again (as a new tenant).
	Deleted bool `json:"deleted,omitempty"`
	// Archive names the tenant's latest archive in the archive store.
	Archive string `json:"archive,omitempty"`
	// ArchivedAt is when it was archived; PurgeAfter when its data is
	// purged (archived tenants); PurgedAt when it was.
	ArchivedAt time.Time `json:"archived_at,omitzero"`
	PurgeAfter time.Time `json:"purge_after,omitzero"`
	PurgedAt   time.Time `json:"purged_at,omitzero"`
}

// IsZero reports whether l holds nothing.
func (l Lifecycle) IsZero() bool { return l == Lifecycle{} }

// UTC returns l with its times in UTC, as stores return them.
func (l Lifecycle) UTC() Lifecycle {
	l.ArchivedAt, l.PurgeAfter, l.PurgedAt = utc(l.ArchivedAt), utc(l.PurgeAfter), utc(l.PurgedAt)
	return l
}

// Limits enforced by Validate.
const (
	MaxExternalIDLen = 256 // bytes
	MaxNameLen       = 200 // characters
	MaxToolNameLen   = 128 // bytes, [A-Za-z0-9_.-]
	MaxKeyLen        = 128 // bytes, flag and config keys
)

// Tenant is one registered tenant: the identity provider's tenant
// identifier (Issuer, ExternalID) mapped to a registry-assigned internal
// ID and the tenant's settings.
//
// Records returned by Registry.Resolve are shared between requests: treat
// them as read-only (use Clone to get a copy you may change). Records
// returned by the admin operations (Add, Get, Lookup, Update, List) are
// the caller's own.
type Tenant struct {
	// ID is assigned by the registry (tenant.NewID) and never changes.
	// Storage names derive from it, never from claim text.
	ID tenant.ID `json:"id"`
	// Issuer is the identity provider the tenant's tokens come from, as
	// configured (the token's iss). Immutable.
	Issuer string `json:"issuer"`
	// ExternalID is the identity provider's tenant identifier: Auth0
	// org_id, Entra tid, Cognito custom:tenant_id, ... Any text is allowed
	// except control characters; it is compared exactly (case and
	// Unicode normalisation matter) and never used as a storage name.
	// Immutable.
	ExternalID string `json:"external_id"`
	// Name is the display name.
	Name string `json:"name,omitempty"`
	// Status decides whether requests are served (see Check).
	Status Status `json:"status"`
	// TrialEndsAt is when a trial ends; required when Status is
	// StatusTrial, ignored otherwise.
	TrialEndsAt time.Time `json:"trial_ends_at,omitzero"`
	// RateLimit is the tenant's budget in requests per minute; 0 means
	// the deployment default.
	RateLimit int `json:"rate_limit,omitempty"`
	// RateBurst is the tenant's burst; 0 means the deployment default.
	RateBurst int `json:"rate_burst,omitempty"`
	// AllowedTools are the tools the tenant may list and call; empty means
	// all tools.
	AllowedTools []string `json:"allowed_tools,omitempty"`
	// Flags are feature flags; an absent flag is off.
	Flags map[string]bool `json:"flags,omitempty"`
	// Config is free-form per-tenant configuration.
	Config map[string]string `json:"config,omitempty"`
	// Lifecycle is the state of lifecycle operations (the lifecycle
	// package sets it).
	Lifecycle Lifecycle `json:"lifecycle,omitzero"`
	// CreatedAt and UpdatedAt are set by the registry (UTC).
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Check applies the status rule at time now: nil for an active tenant or a
// trial that has not ended, ErrSuspended for a suspended tenant, and an
// error wrapping ErrTrialExpired (naming the end date) for an ended trial.
// A record with an unknown status is refused with ErrSuspended.
func (t *Tenant) Check(now time.Time) error {
	switch t.Status {
	case StatusActive:
		return nil
	case StatusTrial:
		if now.Before(t.TrialEndsAt) {
			return nil
		}
		return &trialExpiredError{ended: t.TrialEndsAt}
	case StatusSuspended:
		return ErrSuspended
	case StatusProvisioning:
		return ErrProvisioning
	case StatusArchived, StatusPurged:
		return ErrArchived
	}
	return ErrSuspended // fail closed on a status this version does not know
}

// Clone returns a deep copy of t.
func (t *Tenant) Clone() *Tenant {
	c := *t
	c.AllowedTools = slices.Clone(t.AllowedTools)
	c.Flags = maps.Clone(t.Flags)
	c.Config = maps.Clone(t.Config)
	return &c
}

// Validate checks every rule and reports all problems at once in a
// *ValidationError (errors.Is(err, ErrInvalid)). An empty ID is accepted
// (Registry.Add assigns one); a non-empty one must be well formed.
func (t *Tenant) Validate() error {
	var p []string
	add := func(format string, args ...any) { p = append(p, fmt.Sprintf(format, args...)) }

	if t.ID != "" && !t.ID.Valid() {
		add("id: %q is not a registry-assigned tenant id", t.ID)
	}
	switch {
	case t.Issuer == "":
		add("issuer: must not be empty")
	case !utf8.ValidString(t.Issuer) || hasControl(t.Issuer):
		add("issuer: must be valid UTF-8 without control characters")
	}
	switch {
	case t.ExternalID == "":
		add("external_id: must not be empty (the identity provider's tenant id, e.g. Auth0 org_id or Entra tid)")
	case len(t.ExternalID) > MaxExternalIDLen:
		add("external_id: must be at most %d bytes, not %d", MaxExternalIDLen, len(t.ExternalID))
	case !utf8.ValidString(t.ExternalID) || hasControl(t.ExternalID):
		add("external_id: must be valid UTF-8 without control characters")
	}
	switch {
	case !utf8.ValidString(t.Name) || hasControl(t.Name):
		add("name: must be valid UTF-8 without control characters")
	case utf8.RuneCountInString(t.Name) > MaxNameLen:
		add("name: must be at most %d characters, not %d", MaxNameLen, utf8.RuneCountInString(t.Name))
	}
	if !t.Status.Valid() {
		add("status: must be one of %s, not %q", statusList(), t.Status)
	}
	if t.Status == StatusTrial && t.TrialEndsAt.IsZero() {
		add("trial_ends_at: required when status is %q", StatusTrial)
	}
	if t.RateLimit < 0 {
		add("rate_limit: must be 0 (deployment default) or more, not %d", t.RateLimit)
	}
	if t.RateBurst < 0 {
		add("rate_burst: must be 0 (deployment default) or more, not %d", t.RateBurst)
	}
	for i, name := range t.AllowedTools {
		if !validToolName(name) {
			add("allowed_tools[%d]: %q is not a tool name (1-%d of A-Z a-z 0-9 _ . -)", i, name, MaxToolNameLen)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(t.Flags)) {
		if msg := keyProblem(k); msg != "" {
			add("flags: key %q %s", k, msg)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(t.Config)) {
		if msg := keyProblem(k); msg != "" {
			add("config: key %q %s", k, msg)
		}
	}
	if len(p) > 0 {
		return &ValidationError{Problems: p}
	}
	return nil
}

// validExternalID is the cheap check Resolve applies before asking the
// store, so that junk claim values never reach the database or the cache.
// statusList is the statuses for messages: "active", "trial", ...
func statusList() string {
	q := make([]string, len(Statuses))
	for i, s := range Statuses {
		q[i] = strconv.Quote(string(s))
	}
	return strings.Join(q, ", ")
}

func validExternalID(s string) bool {
	return s != "" && len(s) <= MaxExternalIDLen && utf8.ValidString(s) && !hasControl(s)
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

func validToolName(s string) bool {
	if len(s) == 0 || len(s) > MaxToolNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func keyProblem(k string) string {
	switch {
	case k == "":
		return "must not be empty"
	case len(k) > MaxKeyLen:
		return fmt.Sprintf("must be at most %d bytes", MaxKeyLen)
	case !utf8.ValidString(k) || hasControl(k):
		return "must be valid UTF-8 without control characters"
	}
	return ""
}
