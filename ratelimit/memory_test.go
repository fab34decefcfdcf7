package ratelimit

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func newTestMemory(t *testing.T, clock func() time.Time) *Memory {
	t.Helper()
	m := NewMemory(&MemoryOptions{Now: clock, SweepInterval: -1})
	t.Cleanup(func() { m.Close() })
	return m
}

func TestMemoryContract(t *testing.T) {
	t.Parallel()
	runContract(t, func(t *testing.T, clock func() time.Time) Limiter {
		return newTestMemory(t, clock)
	})
}

func TestMemoryUnlimitedKeepsNoState(t *testing.T) {
	t.Parallel()
	m := newTestMemory(t, newFakeClock().Now)
	for i := range 100 {
		mustAllow(t, m, fmt.Sprint("k", i), Limit{PerMinute: 0}, true)
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len() = %d after unlimited checks, want 0", n)
	}
}

func TestMemorySweepDropsFullBudgets(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := newTestMemory(t, clock.Now)
	lim := Limit{PerMinute: 60, Burst: 1}
	for i := range 10_000 {
		mustAllow(t, m, fmt.Sprint("tenant-", i), lim, true)
	}
	if n := m.Len(); n != 10_000 {
		t.Fatalf("Len() = %d, want 10000", n)
	}
	if n := m.Sweep(); n != 0 {
		t.Fatalf("Sweep() before any budget refilled dropped %d keys, want 0", n)
	}
	clock.Advance(999 * time.Millisecond)
	if n := m.Sweep(); n != 0 {
		t.Fatalf("Sweep() at 999ms dropped %d keys, want 0", n)
	}
	clock.Advance(time.Millisecond)
	if n := m.Sweep(); n != 10_000 {
		t.Fatalf("Sweep() once every budget is full dropped %d keys, want 10000", n)
	}
	if n := m.Len(); n != 0 {
		t.Fatalf("Len() after sweep = %d, want 0", n)
	}
	// A dropped key behaves exactly like a fresh one.
	d := mustAllow(t, m, "tenant-1", lim, true)
	if d.Remaining != 0 || d.ResetAfter != time.Second {
		t.Fatalf("decision for a swept key = %+v, want a fresh budget", d)
	}
}

// With no background sweeper at all, churning through many one-off keys
// keeps memory bounded by the live keys: shards sweep themselves on growth.
func TestMemoryBoundedWithoutSweeper(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := newTestMemory(t, clock.Now)
	lim := Limit{PerMinute: 60, Burst: 1} // each key holds state for 1s
	const keys = 100_000
	maxLen := 0
	for i := range keys {
		clock.Advance(10 * time.Millisecond) // ~100 keys live at any time
		mustAllow(t, m, fmt.Sprint("user-", i), lim, true)
		if i%1000 == 0 {
			maxLen = max(maxLen, m.Len())
		}
	}
	// Each of the 64 shards holds at most max(32, 2×its live keys) + 1.
	if bound := len(m.shards) * (2*minShardSweep + 1); maxLen > bound {
		t.Fatalf("tracked up to %d keys with ~100 live (of %d seen), want <= %d", maxLen, keys, bound)
	}
	t.Logf("max tracked keys: %d (live ~100, seen %d)", maxLen, keys)
}

func TestMemoryBackgroundSweeper(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	m := NewMemory(&MemoryOptions{Now: clock.Now, SweepInterval: time.Millisecond})
	defer m.Close()
	for i := range 100 {
		mustAllow(t, m, fmt.Sprint("k", i), Limit{PerMinute: 60, Burst: 1}, true)
	}
	clock.Advance(2 * time.Second)
	deadline := time.Now().Add(10 * time.Second)
	for m.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("background sweeper left %d expired keys", m.Len())
		}
		time.Sleep(time.Millisecond)
	}
	m.Close()
	m.Close() // idempotent
	mustAllow(t, m, "after-close", Limit{PerMinute: 60}, true)
}

func TestMemoryAllowDoesNotAllocateForKnownKey(t *testing.T) {
	m := NewMemory(&MemoryOptions{SweepInterval: -1})
	defer m.Close()
	ctx := context.Background()
	lim := Limit{PerMinute: 1 << 30, Burst: 1 << 20}
	key := "t" + "abcdefghijklmnopqrst"
	if _, err := m.Allow(ctx, key, lim); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(1000, func() {
		if _, err := m.Allow(ctx, key, lim); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Allow on a known key allocates %.1f times per call, want 0", allocs)
	}
}

func TestMemoryShardCount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, min int }{{0, 64}, {1, 1}, {3, 4}, {64, 64}, {100, 128}} {
		m := NewMemory(&MemoryOptions{Shards: tc.in, SweepInterval: -1})
		if got := len(m.shards); got < tc.min || got&(got-1) != 0 {
			t.Errorf("Shards: %d → %d shards, want a power of two >= %d", tc.in, got, tc.min)
		}
		if tc.in > 0 && len(m.shards) >= 2*tc.in {
			t.Errorf("Shards: %d → %d shards, want the next power of two", tc.in, len(m.shards))
		}
	}
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := NewMemory(nil)
	defer m.Close()
	const tenants = 10_000
	keys := make([]string, tenants)
	for i := range keys {
		keys[i] = fmt.Sprintf("t%020d", i)
	}
	ctx := context.Background()
	lim := Limit{PerMinute: 6000, Burst: 100}
	for _, k := range keys {
		m.Allow(ctx, k, lim)
	}
	var seq uint64
	b.ReportAllocs()
	b.ResetTimer()
	cpu := processCPU()
	defer func() { reportCPU(b, processCPU()-cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		// Each goroutine walks the keys from its own offset.
		i := int(atomicAdd(&seq, 7919)) % tenants
		for pb.Next() {
			if _, err := m.Allow(ctx, keys[i], lim); err != nil {
				b.Error(err)
				return
			}
			i++
			if i == tenants {
				i = 0
			}
		}
	})
}
