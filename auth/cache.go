package auth

import (
	"crypto/sha256"
	"sync"
	"sync/atomic"
)

// tokenKey is the cache key of a token: its SHA-256. Raw tokens are never
// kept as keys, so a heap dump of the cache holds no usable credential.
type tokenKey [sha256.Size]byte

type cacheEntry struct {
	id    *Identity
	until int64 // unix nanoseconds; the entry is usable while now < until
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[tokenKey]cacheEntry
	// Counters live in the shard, so parallel lookups on different
	// shards share no cache line.
	hits, misses atomic.Uint64
	_            [64]byte
}

// tokenCache is a bounded, sharded map of verified tokens. The bound is on
// the whole cache, not per shard (tokens hash unevenly, and a per-shard cap
// made full shards evict while others had room). When the cache is full
// an insert evicts, from its own shard, an expired entry if it finds one
// among a few it looks at, else an arbitrary one (map iteration order is
// random). A shard that is empty when the cache is full takes the entry
// anyway, so the bound may be exceeded by at most one entry per shard.
type tokenCache struct {
	shards []cacheShard
	mask   uint8
	max    int64
	n      atomic.Int64
}

const evictScan = 16

func newTokenCache(size int) *tokenCache {
	n := 32
	if size < 32*8 {
		n = 1
	}
	per := (size + n - 1) / n
	c := &tokenCache{shards: make([]cacheShard, n), mask: uint8(n - 1), max: int64(size)}
	for i := range c.shards {
		c.shards[i].m = make(map[tokenKey]cacheEntry, min(per, 1024))
	}
	return c
}

func (c *tokenCache) shard(k *tokenKey) *cacheShard { return &c.shards[k[0]&c.mask] }

// get returns the cached identity for k if it is still valid at now.
func (c *tokenCache) get(k *tokenKey, now int64) (*Identity, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok || now >= e.until {
		s.misses.Add(1)
		return nil, false
	}
	s.hits.Add(1)
	return e.id, true
}

func (c *tokenCache) put(k *tokenKey, id *Identity, until, now int64) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; ok {
		s.m[*k] = cacheEntry{id: id, until: until}
		return
	}
	if c.n.Load() >= c.max && len(s.m) > 0 {
		evicted, seen := false, 0
		var first tokenKey
		for key, e := range s.m {
			if seen == 0 {
				first = key
			}
			if now >= e.until {
				delete(s.m, key)
				c.n.Add(-1)
				evicted = true
			}
			seen++
			if seen >= evictScan {
				break
			}
		}
		if !evicted {
			delete(s.m, first)
			c.n.Add(-1)
		}
	}
	s.m[*k] = cacheEntry{id: id, until: until}
	c.n.Add(1)
}

// stats sums the shards' counters.
func (c *tokenCache) stats() CacheStats {
	st := CacheStats{Entries: int(c.n.Load())}
	for i := range c.shards {
		st.Hits += c.shards[i].hits.Load()
		st.Misses += c.shards[i].misses.Load()
	}
	return st
}

// len reports the number of entries (tests).
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
