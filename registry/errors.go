package registry

import (
	"errors"
	"strings"
	"time"
)

// Sentinel errors. Classify with errors.Is; messages of the errors this
// package returns add detail around them.
var (
	// ErrNotFound: no tenant has that id (or that issuer and external id).
	// Returned by the admin operations and by Store implementations.
	ErrNotFound = errors.New("registry: tenant not found")

	// ErrExists: a tenant with that issuer and external id is already
	// registered. The wrapping message names them.
	ErrExists = errors.New("registry: tenant already registered")

	// ErrInvalid: a tenant record breaks a validation rule. The error is a
	// *ValidationError listing every problem, each naming its field.
	ErrInvalid = errors.New("registry: invalid tenant")

	// ErrUnknownTenant is what Resolve returns for a tenant that is not
	// registered. Its message is safe to show to the caller: it names no
	// other tenant and says nothing about which tenants exist.
	ErrUnknownTenant = errors.New("tenant is not registered with this server")

	// ErrSuspended: the tenant is registered but suspended. Safe to show.
	ErrSuspended = errors.New("tenant is suspended: contact the operator of this server")

	// ErrProvisioning: the tenant's storage is still being created. Safe
	// to show; the client should retry shortly.
	ErrProvisioning = errors.New("tenant is being set up: retry in a few seconds")

	// ErrArchived: the tenant's data has been archived (or purged). Safe
	// to show to that tenant.
	ErrArchived = errors.New("tenant's data has been archived: contact the operator of this server")

	// ErrTrialExpired: the tenant's trial has ended. The error Check returns
	// wraps it with the end date ("tenant's trial ended on 2026-10-01").
	// Safe to show to that tenant.
	ErrTrialExpired = errors.New("tenant's trial has ended")
)

// ValidationError lists every problem Validate found in a record. It
// matches ErrInvalid under errors.Is.
type ValidationError struct {
	// Problems are "field: what is wrong" lines, in field order.
	Problems []string
}

func (e *ValidationError) Error() string {
	return "invalid tenant: " + strings.Join(e.Problems, "; ")
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// trialExpiredError carries the end date of an expired trial.
type trialExpiredError struct{ ended time.Time }

func (e *trialExpiredError) Error() string {
	return "tenant's trial ended on " + e.ended.UTC().Format(time.DateOnly) +
		": ask the operator of this server to extend the trial or activate the tenant"
}

func (e *trialExpiredError) Is(target error) bool { return target == ErrTrialExpired }
