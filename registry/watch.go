package registry

import (
	"context"
	"errors"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Change is a change to the registry's records that a Watcher reports.
type Change struct {
	// ID is the internal id of the tenant that was added, updated or
	// deleted ("" with All).
	ID tenant.ID
	// Issuer and ExternalID are the tenant's key, as Resolve is asked
	// for it. Both are empty when the watcher knows only the ID.
	Issuer, ExternalID string
	// All says that any record may have changed: the watcher has just
	// started, reconnected, or lost track of some changes.
	All bool
}

// Watcher is implemented by Stores that can report changes committed
// through other handles on the same database: other processes, such as
// the CLI beside a running server, and other replicas. A Registry over
// such a store drops stale cache entries when it hears of them (see
// Registry.Watch) instead of when their TTL ends.
type Watcher interface {
	// Watch calls changed for each change committed to the store, from
	// one goroutine, until ctx ends; then it returns nil. Once it is
	// watching (and again after any failure after which it may have
	// missed changes) it reports Change{All: true}, so that a caller
	// knows what was cached before may be stale. It retries failures
	// itself; changes of this very handle may be reported too. It
	// returns an error only if it cannot watch at all.
	Watch(ctx context.Context, changed func(Change)) error
}

// Watch keeps the cache in step with changes that other processes and
// replicas make to the store, until ctx ends (then it returns nil): it
// runs the store's Watcher and drops the cache entries of every change
// reported, records and "not registered" answers alike, so that a
// suspension or a new tenant applies within the watcher's delay rather
// than Options.TTL or NegativeTTL. If the store is not a Watcher, Watch
// returns nil at once; changes made through this Registry apply at once
// either way.
//
// Run it in a goroutine of its own and cancel ctx to stop it.
func (r *Registry) Watch(ctx context.Context) error {
	w, ok := r.store.(Watcher)
	if !ok {
		return nil
	}
	return w.Watch(ctx, func(c Change) { r.Invalidate(ctx, c) })
}

// Invalidate drops what the cache holds for c: the entry of its key, the
// records with its ID, or, with c.All, everything; lookups of them in
// flight are not cached. For a change that names only an ID it asks the
// store for the tenant's key (a tenant just added may be cached as "not
// registered"); if the store fails, it drops everything. The next Resolve
// of a dropped tenant reads the store.
func (r *Registry) Invalidate(ctx context.Context, c Change) {
	switch {
	case c.All:
		r.cache.invalidateAll()
		r.log.DebugContext(ctx, "registry: cache dropped: any tenant may have changed")
	case c.Issuer != "" || c.ExternalID != "":
		r.cache.invalidate(c.Issuer, c.ExternalID)
		r.log.DebugContext(ctx, "registry: tenant changed elsewhere", "tenant_id", c.ID)
	case c.ID != "":
		r.cache.invalidateID(c.ID) // updated or deleted
		t, err := r.store.GetByID(ctx, c.ID)
		switch {
		case err == nil:
			r.cache.invalidate(t.Issuer, t.ExternalID) // added: may be cached as not registered
		case !errors.Is(err, ErrNotFound):
			r.cache.invalidateAll()
			if ctx.Err() != nil {
				return // stopping
			}
			r.log.WarnContext(ctx, "registry: cannot look up a tenant changed elsewhere; dropped the whole cache",
				"tenant_id", c.ID, "error", err)
			return
		}
		r.log.DebugContext(ctx, "registry: tenant changed elsewhere", "tenant_id", c.ID)
	}
}
