package registry

import (
	"hash/maphash"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantmcp/tenantmcp/tenant"
)

// key identifies a tenant as tokens do: issuer and external id. A struct
// of two strings is its own map key, so a lookup builds nothing.
type key struct{ issuer, externalID string }

// entry is a cached answer: a record, or (t == nil) "not registered".
type entry struct {
	t       *Tenant
	expires int64 // Unix nanoseconds by Options.Now
	// servable is until when t passes Check (Unix nanoseconds): the
	// status rule precomputed, so a hit need not read the record.
	servable int64
}

func newEntry(t *Tenant, expires int64) entry {
	e := entry{t: t, expires: expires, servable: math.MinInt64}
	if t != nil {
		switch t.Status {
		case StatusActive:
			e.servable = math.MaxInt64
		case StatusTrial:
			if !t.TrialEndsAt.IsZero() {
				e.servable = clampNanos(t.TrialEndsAt)
			}
		}
	}
	return e
}

// clampNanos is t in Unix nanoseconds, clamped to the int64 range (which
// ends in 2262).
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// call is one store lookup in flight; concurrent misses of the same key
// wait for it instead of asking the store themselves.
type call struct {
	done    chan struct{}
	t       *Tenant
	err     error
	stale   bool // invalidated while in flight: answer the waiters, cache nothing
	waiters int  // for tests
}

const nShards = 64 // a power of two

// shard is one lock's worth of the cache. Counters live here, not in the
// Registry, so parallel hits on different shards share no cache line.
type shard struct {
	mu      sync.RWMutex
	m       map[key]entry
	calls   map[key]*call
	hits    atomic.Uint64
	misses  atomic.Uint64
	negHits atomic.Uint64
	_       [64]byte // keep neighbouring shards off this cache line
}

// cache is a sharded, bounded, TTL map from key to entry.
type cache struct {
	seed      maphash.Seed
	max       int64
	count     atomic.Int64 // entries in all shards (may briefly run one ahead per inserter)
	evictions atomic.Uint64
	shards    [nShards]shard

	// While a Refresh reads the store, invalidated keys are noted in
	// dirty (dirtyAll: any key may have changed) so that its (possibly
	// older) snapshot of them is not installed. Admin and watch paths
	// only; Resolve never takes mu.
	mu         sync.Mutex
	refreshing int
	dirty      map[key]struct{}
	dirtyAll   bool
}

func newCache(max int) *cache {
	c := &cache{seed: maphash.MakeSeed(), max: int64(max)}
	for i := range c.shards {
		c.shards[i].m = make(map[key]entry)
		c.shards[i].calls = make(map[key]*call)
	}
	return c
}

// shard picks the shard of (issuer, externalID) by a seeded hash of both,
// computed without allocating.
func (c *cache) shard(issuer, externalID string) *shard {
	return &c.shards[c.index(issuer, externalID)]
}

// index hashes issuer and externalID separately and combines the hashes
// (a pair of strings, so no separator is needed and nothing is copied).
func (c *cache) index(issuer, externalID string) int {
	h := maphash.String(c.seed, externalID) ^ maphash.String(c.seed, issuer)*0x9e3779b97f4a7c15
	return int(h>>32) & (nShards - 1)
}

// get returns the entry for k if it is present and live at now.
func (s *shard) get(k key, now int64) (entry, bool) {
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	return e, ok && now < e.expires
}

// putLocked stores e under k, evicting another entry of this shard if the
// cache is full. It reports false if nothing could be evicted (the shard
// is empty while others fill the cache), in which case e is not cached.
// The caller holds s.mu.
func (c *cache) putLocked(s *shard, k key, e entry, now int64) bool {
	if _, ok := s.m[k]; ok {
		s.m[k] = e
		return true
	}
	if c.count.Add(1) > c.max {
		if !c.evictLocked(s, now) {
			c.count.Add(-1)
			return false
		}
	}
	s.m[k] = e
	return true
}

// evictLocked removes one entry of s: among a few sampled (map iteration
// starts at a random place), an expired one if any, else a "not
// registered" one, else the first. The caller holds s.mu.
func (c *cache) evictLocked(s *shard, now int64) bool {
	const sample = 8
	var victim key
	rank, n := -1, 0 // rank 2 = expired, 1 = negative, 0 = live record
	for k, e := range s.m {
		r := 0
		switch {
		case e.expires <= now:
			r = 2
		case e.t == nil:
			r = 1
		}
		if r > rank {
			victim, rank = k, r
		}
		if n++; rank == 2 || n == sample {
			break
		}
	}
	if rank < 0 {
		return false
	}
	delete(s.m, victim)
	c.count.Add(-1)
	c.evictions.Add(1)
	return true
}

// invalidate drops k's entry and detaches any lookup of k in flight, so
// that its (possibly older) answer is not cached.
func (c *cache) invalidate(issuer, externalID string) {
	k := key{issuer, externalID}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshing > 0 {
		c.dirty[key{strings.Clone(issuer), strings.Clone(externalID)}] = struct{}{}
	}
	s := c.shard(issuer, externalID)
	s.mu.Lock()
	if _, ok := s.m[k]; ok {
		delete(s.m, k)
		c.count.Add(-1)
	}
	if cl := s.calls[k]; cl != nil {
		cl.stale = true
		delete(s.calls, k)
	}
	s.mu.Unlock()
}

// invalidateAll drops every entry and detaches every lookup in flight,
// for when any record may have changed.
func (c *cache) invalidateAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshing > 0 {
		c.dirtyAll = true
	}
	for i := range c.shards {
		c.clearShard(&c.shards[i], func(entry) bool { return true })
	}
}

// invalidateID drops the records with id (whatever their key) and
// detaches every lookup in flight, whose keys are not known to be
// another tenant's.
func (c *cache) invalidateID(id tenant.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshing > 0 {
		c.dirtyAll = true // its snapshot may hold the record under a key we do not know
	}
	for i := range c.shards {
		c.clearShard(&c.shards[i], func(e entry) bool { return e.t != nil && e.t.ID == id })
	}
}

// clearShard drops the entries of s that drop selects and detaches all of
// s's lookups in flight.
func (c *cache) clearShard(s *shard, drop func(entry) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.m {
		if drop(e) {
			delete(s.m, k)
			c.count.Add(-1)
		}
	}
	for k, cl := range s.calls {
		cl.stale = true
		delete(s.calls, k)
	}
}

// beginRefresh starts noting invalidated keys for a Refresh; every call
// must be followed by one call of replace or endRefresh.
func (c *cache) beginRefresh() {
	c.mu.Lock()
	if c.refreshing == 0 {
		c.dirty = make(map[key]struct{})
	}
	c.refreshing++
	c.mu.Unlock()
}

// endRefresh ends a Refresh that installs nothing.
func (c *cache) endRefresh() {
	c.mu.Lock()
	c.endRefreshLocked()
	c.mu.Unlock()
}

func (c *cache) endRefreshLocked() {
	if c.refreshing--; c.refreshing == 0 {
		c.dirty, c.dirtyAll = nil, false
	}
}

// replace ends a Refresh: it swaps the content of every shard for fresh
// (indexed by shard), less the keys invalidated since beginRefresh, and
// detaches every lookup in flight.
func (c *cache) replace(fresh *[nShards]map[key]entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.dirty {
		delete(fresh[c.index(k.issuer, k.externalID)], k)
	}
	if c.dirtyAll { // the whole snapshot may be older than a change
		for i := range fresh {
			clear(fresh[i])
		}
	}
	c.endRefreshLocked()
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		old := len(s.m)
		s.m = fresh[i]
		for k, cl := range s.calls {
			cl.stale = true
			delete(s.calls, k)
		}
		c.count.Add(int64(len(s.m) - old))
		s.mu.Unlock()
	}
}

func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
