package ratelimit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Concurrency caps how many requests a key may have in flight at once, so
// one tenant cannot occupy every worker however slowly its tools run. It is
// per process and safe for concurrent use; state for a key exists only
// while the key has requests in flight.
type Concurrency struct {
	seed   maphash.Seed
	shards [concShards]concShard
}

const concShards = 64

type concShard struct {
	mu       sync.Mutex
	inFlight map[string]int
	_        [48]byte
}

// NewConcurrency returns an empty concurrency cap.
func NewConcurrency() *Concurrency {
	c := &Concurrency{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].inFlight = make(map[string]int)
	}
	return c
}

// noRelease is the release func for untracked (unlimited) acquisitions.
func noRelease() {}

// Acquire takes one of key's max slots without blocking. It returns
// ok=false when key already has max requests in flight (the server answers
// that with 429); release is then a no-op, never nil. Otherwise the caller must call release
// when the request ends; calling it more than once has no further effect.
// max <= 0 means unlimited: nothing is tracked.
func (c *Concurrency) Acquire(key string, max int) (release func(), ok bool) {
	if max <= 0 {
		return noRelease, true
	}
	if !c.TryAcquire(key, max) {
		return noRelease, false
	}
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			c.Release(key)
		}
	}, true
}

// TryAcquire is Acquire for a caller that gives the slot back exactly
// once, with Release: it allocates nothing (Acquire's release func costs
// two allocations), which matters on the server's per-request path. It
// reports whether it took one of key's max slots. max <= 0 means
// unlimited: it returns true and tracks nothing, so there is nothing to
// Release.
func (c *Concurrency) TryAcquire(key string, max int) bool {
	if max <= 0 {
		return true
	}
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.inFlight[key]
	if n >= max {
		return false
	}
	s.inFlight[key] = n + 1
	return true
}

// Release gives back a slot of key that TryAcquire took (with max > 0).
// Call it once per such slot: unlike Acquire's release func it cannot
// tell a second call from another request's, and would free that
// request's slot too. Releasing a key with nothing in flight does nothing.
func (c *Concurrency) Release(key string) {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.inFlight[key] - 1; n > 0 {
		s.inFlight[key] = n
	} else {
		delete(s.inFlight, key)
	}
}

func (c *Concurrency) shard(key string) *concShard {
	return &c.shards[maphash.String(c.seed, key)%concShards]
}

// InFlight returns how many requests key has in flight.
func (c *Concurrency) InFlight(key string) int {
	s := c.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight[key]
}

// Len returns how many keys have requests in flight (and so hold state).
func (c *Concurrency) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.inFlight)
		s.mu.Unlock()
	}
	return n
}
