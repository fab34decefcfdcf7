package registry

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// Options configures a Registry. A nil *Options means all defaults.
type Options struct {
	// TTL is how long a resolved record is served from memory before the
	// store is asked again. 0 (or less) means 30s. Changes made through
	// this Registry apply at once, and changes made elsewhere as soon as
	// Watch hears of them; TTL bounds how stale a record can be when
	// nothing watches (or the watcher is disconnected).
	TTL time.Duration
	// NegativeTTL is how long "not registered" is remembered, so a flood
	// of tokens from an unregistered organisation does not reach the
	// store on every request. 0 (or less) means 5s. Add through this
	// Registry forgets it at once, and an Add elsewhere once Watch hears
	// of it; otherwise it lasts up to NegativeTTL.
	NegativeTTL time.Duration
	// MaxEntries bounds the cache (records and "not registered" answers
	// together); when it is full an older or random entry is evicted.
	// 0 (or less) means 10000.
	MaxEntries int
	// Now is the clock for TTLs, trial expiry and timestamps. nil means
	// time.Now.
	Now func() time.Time
	// Logger receives store errors and admin changes. nil discards.
	Logger *slog.Logger
}

// Defaults of Options.
const (
	DefaultTTL         = 30 * time.Second
	DefaultNegativeTTL = 5 * time.Second
	DefaultMaxEntries  = 10000
)

// listPage is the page size Refresh and List use.
const listPage = 500

// Registry resolves tokens' tenant identifiers to tenant records, applies
// the status rules and caches answers in memory in front of a Store. It is
// safe for concurrent use.
type Registry struct {
	store  Store
	ttl    time.Duration
	negTTL time.Duration
	now    func() time.Time
	log    *slog.Logger
	cache  *cache

	issuers sync.Map       // interned issuer strings, so cached records share them
	updMu   [16]sync.Mutex // serialises read-modify-write per id (by hash) in this process
	idSeed  maphash.Seed
}

// Stats are counters of the Resolve cache.
type Stats struct {
	// Entries is how many records and "not registered" answers are cached.
	Entries int
	// Hits are Resolve calls answered from memory with a record;
	// NegativeHits those answered from memory with ErrUnknownTenant.
	Hits, NegativeHits uint64
	// Misses are Resolve calls that went to the store (or joined a
	// lookup already in flight).
	Misses uint64
	// Evictions are entries dropped because the cache was full.
	Evictions uint64
}

// New returns a Registry over s. A nil opts means defaults.
func New(s Store, opts *Options) *Registry {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = DefaultNegativeTTL
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{
		store:  s,
		ttl:    o.TTL,
		negTTL: o.NegativeTTL,
		now:    o.Now,
		log:    o.Logger,
		cache:  newCache(o.MaxEntries),
		idSeed: maphash.MakeSeed(),
	}
}

// Store returns the store the Registry reads and writes.
func (r *Registry) Store() Store { return r.store }

// Resolve returns the record of the tenant a verified token names
// (issuer, externalID) and applies the status rule at the current time:
//
//   - not registered: ErrUnknownTenant (and a nil record);
//   - suspended: ErrSuspended; trial ended: an error wrapping
//     ErrTrialExpired; provisioning: ErrProvisioning; archived or purged:
//     ErrArchived. The record is returned with these errors so the
//     refusal can be audited under the tenant's id;
//   - store failure: an error wrapping it (and a nil record). Nothing is
//     served from an expired cache entry.
//
// Answers are cached for Options.TTL (records) or Options.NegativeTTL
// (not registered); the status rule is applied at every call, so a trial
// ends on time. Concurrent misses of one key make one store call.
//
// The record is shared with other callers: do not modify it.
func (r *Registry) Resolve(ctx context.Context, issuer, externalID string) (*Tenant, error) {
	now := r.now()
	s := r.cache.shard(issuer, externalID)
	nowNS := now.UnixNano()
	if e, ok := s.get(key{issuer, externalID}, nowNS); ok {
		switch {
		case e.t == nil:
			s.negHits.Add(1)
			return nil, ErrUnknownTenant
		case nowNS < e.servable:
			s.hits.Add(1)
			return e.t, nil
		}
		s.hits.Add(1)
		return e.t, e.t.Check(now) // refused: say why
	}
	s.misses.Add(1)
	if issuer == "" || !validExternalID(externalID) {
		return nil, ErrUnknownTenant // junk never reaches the store or the cache
	}
	t, err := r.load(ctx, s, issuer, externalID)
	if err != nil {
		return nil, err
	}
	return t, t.Check(r.now())
}

// load asks the store for a key that missed the cache, once per key
// however many callers miss it at the same time.
func (r *Registry) load(ctx context.Context, s *shard, issuer, externalID string) (*Tenant, error) {
	k := key{issuer, externalID}
	for {
		s.mu.Lock()
		if e, ok := s.m[k]; ok && r.now().UnixNano() < e.expires {
			s.mu.Unlock() // filled while we waited for the lock
			if e.t == nil {
				return nil, ErrUnknownTenant
			}
			return e.t, nil
		}
		c := s.calls[k]
		if c == nil {
			c = &call{done: make(chan struct{})}
			s.calls[k] = c
			s.mu.Unlock()
			r.fetch(ctx, s, k, c)
			return c.t, c.err
		}
		c.waiters++
		s.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if c.err != nil && isContextErr(c.err) && ctx.Err() == nil {
			continue // the caller that asked the store gave up; ask again for ourselves
		}
		return c.t, c.err
	}
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// fetch runs c: one store lookup, whose answer is cached unless the key
// was invalidated meanwhile.
func (r *Registry) fetch(ctx context.Context, s *shard, k key, c *call) {
	done := false
	defer func() {
		if !done { // the store panicked: release the waiters, then re-panic
			c.err = errors.New("registry: tenant lookup panicked")
			s.mu.Lock()
			if s.calls[k] == c {
				delete(s.calls, k)
			}
			s.mu.Unlock()
			close(c.done)
		}
	}()

	t, err := r.store.Get(ctx, k.issuer, k.externalID)
	var e entry
	switch {
	case errors.Is(err, ErrNotFound):
		c.err = ErrUnknownTenant
		// Copy the key: the caller's strings may pin a whole token in memory.
		k = key{strings.Clone(k.issuer), strings.Clone(k.externalID)}
		e = newEntry(nil, r.now().Add(r.negTTL).UnixNano())
		r.log.DebugContext(ctx, "registry: unknown tenant", "issuer", k.issuer, "external_id", k.externalID)
	case err != nil:
		c.err = fmt.Errorf("registry: look up tenant: %w", err)
		r.log.WarnContext(ctx, "registry: tenant lookup failed", "issuer", k.issuer, "error", err)
	case t == nil || t.Issuer != k.issuer || t.ExternalID != k.externalID:
		c.err = fmt.Errorf("registry: store returned a different tenant than asked for")
		r.log.ErrorContext(ctx, "registry: store returned a mismatching record", "issuer", k.issuer)
	default:
		r.intern(t)
		c.t = t
		k = key{t.Issuer, t.ExternalID} // the record's strings, not the caller's
		e = newEntry(t, r.now().Add(r.ttl).UnixNano())
	}
	cacheable := c.err == nil || c.err == ErrUnknownTenant

	s.mu.Lock()
	if cacheable && !c.stale {
		r.cache.putLocked(s, k, e, r.now().UnixNano())
	}
	if s.calls[k] == c {
		delete(s.calls, k)
	}
	s.mu.Unlock()
	done = true
	close(c.done)
}

// intern makes t share the Registry's copy of its issuer string.
func (r *Registry) intern(t *Tenant) {
	if v, ok := r.issuers.Load(t.Issuer); ok {
		t.Issuer = v.(string)
		return
	}
	v, _ := r.issuers.LoadOrStore(t.Issuer, t.Issuer)
	t.Issuer = v.(string)
}

// Refresh reloads the cache from the store: it reads up to MaxEntries
// records in pages, then replaces the cache's content with them (dropping
// every other entry, "not registered" answers included). It returns how
// many records were loaded. On error the cache is left as it was.
// Changes made through this Registry while Refresh runs are not undone by
// its snapshot.
func (r *Registry) Refresh(ctx context.Context) (int, error) {
	r.cache.beginRefresh()
	installed := false
	defer func() {
		if !installed { // error or panic
			r.cache.endRefresh()
		}
	}()
	var fresh [nShards]map[key]entry
	for i := range fresh {
		fresh[i] = make(map[key]entry)
	}
	max := int(r.cache.max)
	n := 0
	var after tenant.ID
	for n < max {
		want := min(listPage, max-n)
		page, err := r.store.List(ctx, after, want)
		if err != nil {
			return 0, fmt.Errorf("registry: refresh: %w", err)
		}
		exp := r.now().Add(r.ttl).UnixNano()
		for _, t := range page {
			r.intern(t)
			k := key{t.Issuer, t.ExternalID}
			m := fresh[r.cache.index(k.issuer, k.externalID)]
			if _, dup := m[k]; !dup {
				n++
			}
			m[k] = newEntry(t, exp)
			after = t.ID
		}
		if len(page) < want {
			break
		}
	}
	r.cache.replace(&fresh)
	installed = true
	r.log.InfoContext(ctx, "registry: refreshed tenant cache", "tenants", n)
	return n, nil
}

// Stats returns the cache's counters.
func (r *Registry) Stats() Stats {
	st := Stats{Entries: r.cache.len(), Evictions: r.cache.evictions.Load()}
	for i := range r.cache.shards {
		s := &r.cache.shards[i]
		st.Hits += s.hits.Load()
		st.Misses += s.misses.Load()
		st.NegativeHits += s.negHits.Load()
	}
	return st
}

// timestamp is the registry's notion of now for stored times: UTC,
// microseconds (what every backend keeps exactly).
func (r *Registry) timestamp() time.Time {
	return r.now().UTC().Truncate(time.Microsecond)
}

// Add registers a new tenant. It assigns the ID (t.ID must be empty) and
// the timestamps, defaults Status to active, validates the record and
// stores it. It returns an error wrapping ErrExists if (Issuer,
// ExternalID) is taken and a *ValidationError (ErrInvalid) listing every
// problem. A cached "not registered" answer for the tenant is forgotten.
func (r *Registry) Add(ctx context.Context, t Tenant) (*Tenant, error) {
	if t.ID != "" {
		return nil, &ValidationError{Problems: []string{"id: is assigned by the registry; leave it empty"}}
	}
	t.ID = tenant.NewID()
	t.CreatedAt = time.Time{}
	return r.create(ctx, &t)
}

// Reinstate registers again a tenant whose record was removed, under its
// own internal id and creation time (t.ID and t.CreatedAt as they were):
// a restore from an archive. Errors are those of Add; an id still
// registered is ErrExists.
func (r *Registry) Reinstate(ctx context.Context, t Tenant) (*Tenant, error) {
	if !t.ID.Valid() {
		return nil, &ValidationError{Problems: []string{fmt.Sprintf("id: %q is not a registry-assigned tenant id", t.ID)}}
	}
	return r.create(ctx, &t)
}

// create stores a new record with t.ID; a zero CreatedAt is now.
func (r *Registry) create(ctx context.Context, t *Tenant) (*Tenant, error) {
	rec := normalize(t)
	if rec.Status == "" {
		rec.Status = StatusActive
	}
	rec.TrialEndsAt = truncate(rec.TrialEndsAt)
	rec.UpdatedAt = r.timestamp()
	if rec.CreatedAt.IsZero() {
		rec.CreatedAt = rec.UpdatedAt
	}
	rec.CreatedAt = truncate(rec.CreatedAt)
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if err := r.store.Create(ctx, rec); err != nil {
		if errors.Is(err, ErrExists) {
			return nil, err
		}
		return nil, fmt.Errorf("registry: add tenant: %w", err)
	}
	r.cache.invalidate(rec.Issuer, rec.ExternalID)
	r.log.InfoContext(ctx, "registry: tenant added", "tenant_id", rec.ID, "issuer", rec.Issuer,
		"external_id", rec.ExternalID, "status", rec.Status)
	return rec, nil
}

func truncate(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC().Truncate(time.Microsecond)
}

// Get returns the tenant with internal id id from the store (uncached,
// no status check), or ErrNotFound.
func (r *Registry) Get(ctx context.Context, id tenant.ID) (*Tenant, error) {
	if !id.Valid() {
		return nil, fmt.Errorf("%w: %q is not a tenant id", ErrNotFound, id)
	}
	t, err := r.store.GetByID(ctx, id)
	if err != nil {
		return nil, wrapStore("get tenant", err)
	}
	return t, nil
}

// Lookup returns the tenant registered as (issuer, externalID) from the
// store (uncached, no status check), or ErrNotFound. It is for
// administration; the request path uses Resolve.
func (r *Registry) Lookup(ctx context.Context, issuer, externalID string) (*Tenant, error) {
	t, err := r.store.Get(ctx, issuer, externalID)
	if err != nil {
		return nil, wrapStore("look up tenant", err)
	}
	return t, nil
}

func wrapStore(op string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return err
	}
	return fmt.Errorf("registry: %s: %w", op, err)
}

// Update changes a tenant by read-modify-write: it reads the record, lets
// fn change a copy, validates it and stores it, then drops the cached
// entry so the change applies to the next request. ID, Issuer, ExternalID
// and CreatedAt cannot change (ErrInvalid); UpdatedAt is set. An error
// from fn is returned as is and nothing is written. Updates through one
// Registry are serialised per tenant (so fn must not call Update itself);
// between processes the last writer wins.
func (r *Registry) Update(ctx context.Context, id tenant.ID, fn func(*Tenant) error) (*Tenant, error) {
	mu := &r.updMu[maphash.String(r.idSeed, string(id))%uint64(len(r.updMu))]
	mu.Lock()
	defer mu.Unlock()
	old, err := r.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	rec := old.Clone()
	if err := fn(rec); err != nil {
		return nil, err
	}
	var p []string
	if rec.ID != old.ID {
		p = append(p, "id: cannot be changed")
	}
	if rec.Issuer != old.Issuer {
		p = append(p, "issuer: cannot be changed (add a new tenant instead)")
	}
	if rec.ExternalID != old.ExternalID {
		p = append(p, "external_id: cannot be changed (add a new tenant instead)")
	}
	if !rec.CreatedAt.Equal(old.CreatedAt) {
		p = append(p, "created_at: cannot be changed")
	}
	if len(p) > 0 {
		return nil, &ValidationError{Problems: p}
	}
	rec = normalize(rec)
	rec.TrialEndsAt = truncate(rec.TrialEndsAt)
	rec.UpdatedAt = r.timestamp()
	if err := rec.Validate(); err != nil {
		return nil, err
	}
	if err := r.store.Update(ctx, rec); err != nil {
		return nil, wrapStore("update tenant", err)
	}
	r.cache.invalidate(rec.Issuer, rec.ExternalID)
	r.log.InfoContext(ctx, "registry: tenant updated", "tenant_id", rec.ID, "status", rec.Status)
	return rec, nil
}

// Delete removes a tenant's registration (not its data) and drops its
// cached entry, or returns ErrNotFound.
func (r *Registry) Delete(ctx context.Context, id tenant.ID) error {
	t, err := r.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := r.store.Delete(ctx, id); err != nil {
		return wrapStore("delete tenant", err)
	}
	r.cache.invalidate(t.Issuer, t.ExternalID)
	r.log.InfoContext(ctx, "registry: tenant deleted", "tenant_id", id)
	return nil
}

// List returns every tenant, ordered by ID, reading the store in pages.
func (r *Registry) List(ctx context.Context) ([]*Tenant, error) {
	var out []*Tenant
	var after tenant.ID
	for {
		page, err := r.store.List(ctx, after, listPage)
		if err != nil {
			return nil, fmt.Errorf("registry: list tenants: %w", err)
		}
		out = append(out, page...)
		if len(page) < listPage {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}
