package admin

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// MemoryStore is a Store that keeps grants and idempotency keys in memory,
// for tests and single-process development. It keeps times as the SQL
// stores do, in UTC truncated to the microsecond, so that it orders and
// compares them as they do. The zero value is not usable: call
// NewMemoryStore.
type MemoryStore struct {
	mu      sync.Mutex
	byID    map[string]*Impersonation
	byToken map[TokenHash]string // token hash → grant id
	keys    map[string]*IdempotencyRecord
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		byID:    map[string]*Impersonation{},
		byToken: map[TokenHash]string{},
		keys:    map[string]*IdempotencyRecord{},
	}
}

// storedTime is t as every Store keeps it: in UTC, truncated to the
// microsecond (the precision of PostgreSQL's timestamptz); the zero time
// stays zero.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Truncate(time.Microsecond)
}

// copyGrant returns the copy a store keeps or hands out: its own strings
// and scopes, times as storedTime, empty scopes as nil.
func copyGrant(g *Impersonation) *Impersonation {
	c := *g
	c.ID = strings.Clone(g.ID)
	c.Admin, c.AdminIssuer, c.User = strings.Clone(g.Admin), strings.Clone(g.AdminIssuer), strings.Clone(g.User)
	c.Reason, c.Ticket, c.EndedBy = strings.Clone(g.Reason), strings.Clone(g.Ticket), strings.Clone(g.EndedBy)
	c.Scopes = nil
	if len(g.Scopes) > 0 {
		c.Scopes = slices.Clone(g.Scopes)
	}
	c.CreatedAt, c.ExpiresAt, c.EndedAt = storedTime(g.CreatedAt), storedTime(g.ExpiresAt), storedTime(g.EndedAt)
	return &c
}

// CreateImpersonation implements Store.
func (m *MemoryStore) CreateImpersonation(ctx context.Context, g *Impersonation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byID[g.ID]; ok {
		return fmt.Errorf("%w: impersonation id %q is taken", ErrExists, g.ID)
	}
	if _, ok := m.byToken[g.TokenHash]; ok {
		return fmt.Errorf("%w: an impersonation with this token hash exists", ErrExists)
	}
	c := copyGrant(g)
	m.byID[c.ID] = c
	m.byToken[c.TokenHash] = c.ID
	return nil
}

// ImpersonationByToken implements Store.
func (m *MemoryStore) ImpersonationByToken(ctx context.Context, h TokenHash) (*Impersonation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.byToken[h]
	if !ok {
		return nil, ErrNotFound
	}
	return copyGrant(m.byID[id]), nil
}

// Impersonation implements Store.
func (m *MemoryStore) Impersonation(ctx context.Context, id string) (*Impersonation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.byID[id]
	if !ok {
		return nil, ErrNotFound
	}
	return copyGrant(g), nil
}

// newerFirst orders grants as ListImpersonations returns them: by
// CreatedAt, then ID, descending.
func newerFirst(a, b *Impersonation) int {
	return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(b.ID, a.ID))
}

// ListImpersonations implements Store.
func (m *MemoryStore) ListImpersonations(ctx context.Context, f ImpersonationFilter) ([]*Impersonation, error) {
	limit := PageLimit(f.Limit)
	activeAt := storedTime(f.ActiveAt)
	m.mu.Lock()
	defer m.mu.Unlock()
	var after *Impersonation
	if f.Before != "" {
		var ok bool
		if after, ok = m.byID[f.Before]; !ok {
			return nil, fmt.Errorf("%w: list impersonations before %q: no such grant", ErrNotFound, f.Before)
		}
	}
	var sel []*Impersonation
	for _, g := range m.byID {
		switch {
		case f.Tenant != "" && g.Tenant != f.Tenant,
			f.Admin != "" && g.Admin != f.Admin,
			!activeAt.IsZero() && !g.ActiveAt(activeAt),
			after != nil && newerFirst(g, after) <= 0:
			continue
		}
		sel = append(sel, g)
	}
	slices.SortFunc(sel, newerFirst)
	if len(sel) > limit {
		sel = sel[:limit]
	}
	out := make([]*Impersonation, len(sel))
	for i, g := range sel {
		out[i] = copyGrant(g)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// PageLimit is the page size a list operation uses for the limit asked
// for: DefaultPageSize for limit <= 0, at most MaxPageSize.
func PageLimit(limit int) int {
	if limit <= 0 {
		return DefaultPageSize
	}
	return min(limit, MaxPageSize)
}

// ErrZeroEndTime is returned by EndImpersonation for a zero `at`: a grant
// whose EndedAt is zero has not ended.
var ErrZeroEndTime = errors.New("admin: end impersonation: zero end time")

// EndImpersonation implements Store.
func (m *MemoryStore) EndImpersonation(ctx context.Context, id, by string, at time.Time) (*Impersonation, error) {
	if at.IsZero() {
		return nil, ErrZeroEndTime
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	g, ok := m.byID[id]
	if !ok {
		return nil, ErrNotFound
	}
	if g.EndedAt.IsZero() {
		g.EndedAt, g.EndedBy = storedTime(at), strings.Clone(by)
	}
	return copyGrant(g), nil
}

// ClaimIdempotencyKey implements Store.
func (m *MemoryStore) ClaimIdempotencyKey(ctx context.Context, key string, h RequestHash, now time.Time) (*IdempotencyRecord, bool, error) {
	now = storedTime(now)
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec, ok := m.keys[key]; ok && !expired(rec.CreatedAt, now) {
		c := *rec
		return &c, false, nil
	}
	rec := &IdempotencyRecord{Key: strings.Clone(key), Request: h, CreatedAt: now}
	m.keys[rec.Key] = rec
	c := *rec
	return &c, true, nil
}

// expired reports whether a key recorded at created is no longer
// remembered at now: it is older than IdempotencyTTL.
func expired(created, now time.Time) bool {
	return created.Before(now.Add(-IdempotencyTTL))
}

// ErrEmptyTenant is returned by CompleteIdempotencyKey for an empty
// tenant id: an empty Tenant means the create is still in progress.
var ErrEmptyTenant = errors.New("admin: complete idempotency key: empty tenant id")

// CompleteIdempotencyKey implements Store.
func (m *MemoryStore) CompleteIdempotencyKey(ctx context.Context, key string, id tenant.ID) error {
	if id == "" {
		return ErrEmptyTenant
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.keys[key]
	if !ok {
		return ErrNotFound
	}
	rec.Tenant = tenant.ID(strings.Clone(string(id)))
	return nil
}

// ReleaseIdempotencyKey implements Store.
func (m *MemoryStore) ReleaseIdempotencyKey(ctx context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec, ok := m.keys[key]; ok && rec.Tenant == "" {
		delete(m.keys, key)
	}
	return nil
}

// Close implements Store; it does nothing.
func (m *MemoryStore) Close() error { return nil }
