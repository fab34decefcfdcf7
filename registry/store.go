package registry

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Store is the durable backend of a Registry: plain reads and writes of
// tenant records, with no cache, no validation and no status rules (the
// Registry applies those), and the leases that keep two lifecycle
// operations off one tenant (see Lease). Implementations: sqlitestore,
// pgstore and MemoryStore; registrytest.Run is their contract suite.
//
// Every method is safe for concurrent use. Records passed in are not
// retained; records returned are fresh copies the caller owns, with times
// in UTC and empty lists and maps returned as nil.
type Store interface {
	// Get returns the tenant registered as (issuer, externalID), compared
	// exactly, or ErrNotFound.
	Get(ctx context.Context, issuer, externalID string) (*Tenant, error)
	// GetByID returns the tenant with internal id id, or ErrNotFound.
	GetByID(ctx context.Context, id tenant.ID) (*Tenant, error)
	// List returns up to limit tenants with ID > after, ordered by ID
	// (after "" starts at the beginning; limit <= 0 means 100). A page
	// shorter than limit is the last.
	List(ctx context.Context, after tenant.ID, limit int) ([]*Tenant, error)
	// Create stores a new record. It returns an error wrapping ErrExists,
	// naming them, if (issuer, external id) or the ID is taken; on any
	// error nothing is written.
	Create(ctx context.Context, t *Tenant) error
	// Update replaces the mutable fields (all but ID, Issuer, ExternalID
	// and CreatedAt) of the record with t.ID, or returns ErrNotFound.
	Update(ctx context.Context, t *Tenant) error
	// Delete removes the record with id, or returns ErrNotFound.
	Delete(ctx context.Context, id tenant.ID) error

	// AcquireLease takes the lease on the tenant (l.Issuer, l.ExternalID)
	// for l.Token until l.ExpiresAt, with its other fields as they are, if
	// no lease is held on it or the lease held ended at or before
	// l.AcquiredAt. Otherwise it returns a *LeasedError (ErrLeased) naming
	// the lease in force and changes nothing. Of concurrent acquisitions,
	// through any handles on the same store, at most one succeeds. Leases
	// are independent of the tenant records: a lease may be taken on a
	// tenant that is not registered.
	AcquireLease(ctx context.Context, l Lease) error
	// RenewLease moves the end of the lease on (issuer, externalID) held
	// with token to expires, or returns ErrLeaseLost if it is not held
	// with token (an expired lease nobody has taken since is still held).
	RenewLease(ctx context.Context, issuer, externalID, token string, expires time.Time) error
	// ReleaseLease ends the lease on (issuer, externalID) if it is held
	// with token; otherwise it changes nothing and returns nil.
	ReleaseLease(ctx context.Context, issuer, externalID, token string) error
	// Close releases the store's resources.
	Close() error
}

// DefaultPageSize is the List page size used when limit <= 0.
const DefaultPageSize = 100

// ExistsError returns the error a Store reports when (issuer, externalID)
// is already registered: it wraps ErrExists and names both.
func ExistsError(issuer, externalID string) error {
	return fmt.Errorf("%w: issuer %q already has a tenant with external id %q", ErrExists, issuer, externalID)
}

// MemoryStore is a Store that keeps records in memory, for tests and
// single-process deployments that load tenants from elsewhere. The zero
// value is not usable: call NewMemoryStore.
type MemoryStore struct {
	mu    sync.RWMutex
	byID  map[tenant.ID]*Tenant
	byKey map[key]tenant.ID

	lmu    sync.Mutex
	leases map[key]Lease
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{byID: map[tenant.ID]*Tenant{}, byKey: map[key]tenant.ID{}, leases: map[key]Lease{}}
}

// normalize returns the copy a store keeps or hands out: times in UTC,
// empty lists and maps as nil.
func normalize(t *Tenant) *Tenant {
	c := t.Clone()
	if len(c.AllowedTools) == 0 {
		c.AllowedTools = nil
	}
	if len(c.Flags) == 0 {
		c.Flags = nil
	}
	if len(c.Config) == 0 {
		c.Config = nil
	}
	c.TrialEndsAt = utc(c.TrialEndsAt)
	c.Lifecycle = c.Lifecycle.UTC()
	c.CreatedAt = utc(c.CreatedAt)
	c.UpdatedAt = utc(c.UpdatedAt)
	return c
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// Get implements Store.
func (m *MemoryStore) Get(ctx context.Context, issuer, externalID string) (*Tenant, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok := m.byKey[key{issuer, externalID}]
	if !ok {
		return nil, ErrNotFound
	}
	return m.byID[id].Clone(), nil
}

// GetByID implements Store.
func (m *MemoryStore) GetByID(ctx context.Context, id tenant.ID) (*Tenant, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	t, ok := m.byID[id]
	if !ok {
		return nil, ErrNotFound
	}
	return t.Clone(), nil
}

// List implements Store.
func (m *MemoryStore) List(ctx context.Context, after tenant.ID, limit int) ([]*Tenant, error) {
	if limit <= 0 {
		limit = DefaultPageSize
	}
	m.mu.RLock()
	ids := make([]tenant.ID, 0, len(m.byID))
	for id := range m.byID {
		if id > after {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	if len(ids) > limit {
		ids = ids[:limit]
	}
	out := make([]*Tenant, len(ids))
	for i, id := range ids {
		out[i] = m.byID[id].Clone()
	}
	m.mu.RUnlock()
	return out, nil
}

// Create implements Store.
func (m *MemoryStore) Create(ctx context.Context, t *Tenant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := key{t.Issuer, t.ExternalID}
	if _, ok := m.byKey[k]; ok {
		return ExistsError(t.Issuer, t.ExternalID)
	}
	if _, ok := m.byID[t.ID]; ok {
		return fmt.Errorf("%w: tenant id %s is taken", ErrExists, t.ID)
	}
	c := normalize(t)
	c.Issuer = strings.Clone(c.Issuer)
	c.ExternalID = strings.Clone(c.ExternalID)
	m.byID[c.ID] = c
	m.byKey[k] = c.ID
	return nil
}

// Update implements Store.
func (m *MemoryStore) Update(ctx context.Context, t *Tenant) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, ok := m.byID[t.ID]
	if !ok {
		return ErrNotFound
	}
	c := normalize(t)
	c.Issuer, c.ExternalID, c.CreatedAt = old.Issuer, old.ExternalID, old.CreatedAt
	m.byID[c.ID] = c
	return nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(ctx context.Context, id tenant.ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.byID[id]
	if !ok {
		return ErrNotFound
	}
	delete(m.byID, id)
	delete(m.byKey, key{t.Issuer, t.ExternalID})
	return nil
}

// Close implements Store; it does nothing.
func (m *MemoryStore) Close() error { return nil }
