package registry

import (
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Status is a tenant's lifecycle state.
type Status string

// Statuses.
const (
	// StatusActive: requests are served.
	StatusActive Status = "active"
	// StatusSuspended: every request is refused with ErrSuspended.
	StatusSuspended Status = "suspended"
	// StatusTrial: requests are served until TrialEndsAt, then refused
	// with ErrTrialExpired.
	StatusTrial Status = "trial"
)

// Valid reports whether s is one of the defined statuses.
func (s Status) Valid() bool {
	return s == StatusActive || s == StatusSuspended || s == StatusTrial
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
		add("status: must be %q, %q or %q, not %q", StatusActive, StatusSuspended, StatusTrial, t.Status)
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
