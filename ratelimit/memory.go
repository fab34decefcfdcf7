package ratelimit

import (
	"context"
	"hash/maphash"
	"math/bits"
	"runtime"
	"sync"
	"time"
)

// MemoryOptions configure NewMemory. A nil *MemoryOptions means all defaults.
type MemoryOptions struct {
	// Shards is the number of independently locked partitions of the key
	// space, rounded up to a power of two. Zero means
	// max(64, 8 × GOMAXPROCS) rounded up to a power of two.
	Shards int
	// SweepInterval is how often a background goroutine drops keys whose
	// budget is full again (such state is equivalent to no state). Zero
	// means one minute; negative disables the goroutine (Sweep can still be
	// called by hand). Independently of it, a shard sweeps itself whenever
	// it has doubled in size since its last sweep, so memory stays bounded
	// by about twice the number of keys that are actually being limited.
	SweepInterval time.Duration
	// Now is the clock. Nil means time.Now, read through its monotonic
	// reading so wall-clock jumps do not disturb the limiter. Tests inject
	// a fake clock here.
	Now func() time.Time
}

// Memory is an in-process GCRA limiter. Budgets are per process: behind N
// replicas a tenant gets N budgets, so use Redis when running more than
// one replica. It is safe for concurrent use; the zero value is not usable,
// call NewMemory. Call Close to stop the background sweeper.
type Memory struct {
	seed   maphash.Seed
	mask   uint64
	shards []memShard
	clock  func() time.Time
	base   time.Time

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

var _ Limiter = (*Memory)(nil)

// memShard is one lock and its keys' TATs (nanoseconds since Memory.base),
// padded to a cache line so neighbouring shards' locks do not share one.
// Values are pointers so that updating a known key is one map lookup and a
// store, with no second hash and probe for the assignment.
type memShard struct {
	mu      sync.Mutex
	tats    map[string]*int64
	sweepAt int // sweep before inserting once len(tats) reaches this
	peak    int // largest len(tats) since the map was last rebuilt
	_       [32]byte
}

// minShardSweep is the smallest sweepAt: below it a shard never sweeps on
// insert (sweeping a tiny map buys nothing).
const minShardSweep = 32

// NewMemory returns an in-process limiter. o may be nil.
func NewMemory(o *MemoryOptions) *Memory {
	if o == nil {
		o = &MemoryOptions{}
	}
	n := o.Shards
	if n <= 0 {
		n = max(64, 8*runtime.GOMAXPROCS(0))
	}
	n = 1 << bits.Len(uint(n-1)) // round up to a power of two
	m := &Memory{
		seed:   maphash.MakeSeed(),
		mask:   uint64(n - 1),
		shards: make([]memShard, n),
		clock:  o.Now,
	}
	for i := range m.shards {
		m.shards[i].tats = make(map[string]*int64)
		m.shards[i].sweepAt = minShardSweep
	}
	if m.clock != nil {
		m.base = m.clock()
	} else {
		m.base = time.Now()
	}
	interval := o.SweepInterval
	if interval == 0 {
		interval = time.Minute
	}
	if interval > 0 {
		m.stop = make(chan struct{})
		m.done = make(chan struct{})
		go m.sweeper(interval)
	}
	return m
}

// now returns the current time in nanoseconds since m.base.
func (m *Memory) now() int64 {
	if m.clock != nil {
		return int64(m.clock().Sub(m.base))
	}
	return int64(time.Since(m.base))
}

// Allow implements Limiter. It never fails except for an empty key, and it
// does not allocate for a key it already tracks.
func (m *Memory) Allow(_ context.Context, key string, l Limit) (Decision, error) {
	if key == "" {
		return Decision{}, ErrInvalidKey
	}
	l = l.Effective()
	if l.Unlimited() {
		return unlimitedDecision(), nil
	}
	p := paramsFor(l, int64(time.Minute), maxTauNanos)
	now := m.now()
	s := &m.shards[maphash.String(m.seed, key)&m.mask]
	s.mu.Lock()
	var r gcraResult
	if tat := s.tats[key]; tat != nil {
		r = gcra(*tat, now, p)
		if r.allowed {
			*tat = r.tat
		}
	} else {
		r = gcra(now, now, p)
		if r.allowed {
			s.insert(key, r.tat, now)
		}
	}
	s.mu.Unlock()
	return r.decision(l, time.Nanosecond), nil
}

// insert adds a new key, first sweeping the shard if it has doubled since
// its last sweep. The sweep costs O(len) once per doubling, so O(1)
// amortised per insert, and keeps the map within about twice its live keys.
func (s *memShard) insert(key string, tat, now int64) {
	if len(s.tats) >= s.sweepAt {
		s.sweep(now)
		s.sweepAt = max(minShardSweep, 2*len(s.tats))
	}
	s.tats[key] = &tat
	s.peak = max(s.peak, len(s.tats))
}

// sweep drops keys whose TAT has passed (their budget is full, which is the
// same as no state) and returns how many it dropped. When the map has shrunk
// to a quarter of its peak it is rebuilt, because Go maps do not give memory
// back on delete.
func (s *memShard) sweep(now int64) int {
	before := len(s.tats)
	for k, tat := range s.tats {
		if *tat <= now {
			delete(s.tats, k)
		}
	}
	if s.peak > 4*minShardSweep && len(s.tats) < s.peak/4 {
		fresh := make(map[string]*int64, len(s.tats))
		for k, v := range s.tats {
			fresh[k] = v
		}
		s.tats = fresh
		s.peak = len(fresh)
	}
	return before - len(s.tats)
}

// Sweep drops every key whose budget is full again and returns how many it
// dropped. The background sweeper calls it; it is exported for callers that
// disable the sweeper and for tests.
func (m *Memory) Sweep() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += s.sweep(m.now())
		s.sweepAt = max(minShardSweep, 2*len(s.tats))
		s.mu.Unlock()
	}
	return n
}

// Len returns how many keys currently hold state.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.tats)
		s.mu.Unlock()
	}
	return n
}

func (m *Memory) sweeper(interval time.Duration) {
	defer close(m.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
			m.Sweep()
		}
	}
}

// Close stops the background sweeper and waits for it to exit. The limiter
// keeps working after Close (without background sweeps). Close is
// idempotent and always returns nil.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		if m.stop != nil {
			close(m.stop)
			<-m.done
		}
	})
	return nil
}
