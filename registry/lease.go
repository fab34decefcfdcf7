package registry

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Lease is the right to run one operation on one tenant, held in the
// registry's store so that goroutines, processes (the CLI beside a
// server) and replicas sharing the store all see it. A lease is taken per
// tenant key (Issuer, ExternalID), not per internal id, so that it can be
// taken before the tenant is registered: two creates of one tenant
// contend for the same lease. It ends when its holder releases it, or at
// ExpiresAt unless the holder renews it first, so a holder that crashed
// keeps the tenant for at most one lease period.
type Lease struct {
	// Issuer and ExternalID name the tenant the lease is on.
	Issuer, ExternalID string
	// Tenant is the tenant's internal id; empty while it is not
	// registered yet (a create).
	Tenant tenant.ID
	// Operation is what the holder is doing ("archive", "provision", …),
	// and Holder and Via who is doing it and through what: they are for
	// the refusals of other callers.
	Operation, Holder, Via string
	// Token identifies one acquisition: only the holder that knows it
	// renews or releases the lease.
	Token string
	// AcquiredAt is when the lease was taken; it is also the time against
	// which an earlier holder's ExpiresAt is compared.
	AcquiredAt time.Time
	// ExpiresAt is when the lease ends unless it is renewed.
	ExpiresAt time.Time
}

// Errors of the lease methods of Store. Classify with errors.Is.
var (
	// ErrLeased: another holder's lease on the tenant is in force. The
	// error is a *LeasedError naming it.
	ErrLeased = errors.New("registry: the tenant is leased by another operation")
	// ErrLeaseLost: the lease is no longer held with this token (it
	// expired and another holder took it, or it was released).
	ErrLeaseLost = errors.New("registry: the lease was lost")
)

// LeasedError is the refusal of AcquireLease: Holder is the lease in
// force. It matches ErrLeased under errors.Is.
type LeasedError struct {
	Holder Lease
}

func (e *LeasedError) Error() string {
	return fmt.Sprintf("registry: tenant %q of issuer %q is leased for %s by %s until %s",
		e.Holder.ExternalID, e.Holder.Issuer, e.Holder.Operation, e.Holder.Holder, e.Holder.ExpiresAt.UTC().Format(time.RFC3339))
}

// Is makes errors.Is(err, ErrLeased) true.
func (e *LeasedError) Is(target error) bool { return target == ErrLeased }

// AcquireLease implements Store.
func (m *MemoryStore) AcquireLease(_ context.Context, l Lease) error {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	k := key{l.Issuer, l.ExternalID}
	if cur, ok := m.leases[k]; ok && cur.ExpiresAt.After(l.AcquiredAt) {
		return &LeasedError{Holder: cur}
	}
	l.AcquiredAt, l.ExpiresAt = utc(l.AcquiredAt), utc(l.ExpiresAt)
	m.leases[k] = l
	return nil
}

// RenewLease implements Store.
func (m *MemoryStore) RenewLease(_ context.Context, issuer, externalID, token string, expires time.Time) error {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	k := key{issuer, externalID}
	cur, ok := m.leases[k]
	if !ok || cur.Token != token {
		return ErrLeaseLost
	}
	cur.ExpiresAt = utc(expires)
	m.leases[k] = cur
	return nil
}

// ReleaseLease implements Store.
func (m *MemoryStore) ReleaseLease(_ context.Context, issuer, externalID, token string) error {
	m.lmu.Lock()
	defer m.lmu.Unlock()
	k := key{issuer, externalID}
	if cur, ok := m.leases[k]; ok && cur.Token == token {
		delete(m.leases, k)
	}
	return nil
}
