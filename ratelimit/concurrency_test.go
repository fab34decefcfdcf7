package ratelimit

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestConcurrencyCapUnderParallelLoad(t *testing.T) {
	t.Parallel()
	c := NewConcurrency()
	const max = 3
	var inFlight, peak, refused atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range 16 {
		wg.Go(func() {
			<-start
			key := "tenant-a"
			if g%4 == 0 {
				key = "tenant-b"
			}
			for range 500 {
				release, ok := c.Acquire(key, max)
				if !ok {
					refused.Add(1)
					continue
				}
				if key == "tenant-a" {
					n := inFlight.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					if n > max {
						t.Errorf("%d requests in flight for one key, cap is %d", n, max)
					}
					inFlight.Add(-1)
				}
				release()
				release() // idempotent: must not free a second slot
			}
		})
	}
	close(start)
	wg.Wait()
	if peak.Load() == 0 {
		t.Fatal("no request ever acquired a slot")
	}
	if n := c.Len(); n != 0 {
		t.Fatalf("Len() = %d after every request released, want 0", n)
	}
	t.Logf("peak in flight %d, refused %d", peak.Load(), refused.Load())
}

func TestConcurrencySemantics(t *testing.T) {
	t.Parallel()
	c := NewConcurrency()
	r1, ok1 := c.Acquire("a", 2)
	r2, ok2 := c.Acquire("a", 2)
	r3, ok3 := c.Acquire("a", 2)
	if !ok1 || !ok2 || ok3 || r3 == nil {
		t.Fatalf("Acquire x3 with max 2: ok = %v %v %v, want true true false", ok1, ok2, ok3)
	}
	if _, ok := c.Acquire("b", 2); !ok {
		t.Fatal("a full key blocked another key")
	}
	r1()
	r1() // a double release must not let a third request in
	if _, ok := c.Acquire("a", 2); !ok {
		t.Fatal("released slot not reusable")
	}
	if _, ok := c.Acquire("a", 2); ok {
		t.Fatal("double release freed two slots")
	}
	if got := c.InFlight("a"); got != 2 {
		t.Fatalf("InFlight(a) = %d, want 2", got)
	}
	r3() // the refused acquisition's release is a harmless no-op
	if got := c.InFlight("a"); got != 2 {
		t.Fatalf("InFlight(a) = %d after a no-op release, want 2", got)
	}
	r2()
	// Unlimited is not tracked.
	for range 100 {
		r, ok := c.Acquire("u", 0)
		if !ok {
			t.Fatal("max 0 refused")
		}
		r()
	}
	if c.InFlight("u") != 0 {
		t.Fatal("unlimited key tracked")
	}
}

func TestConcurrencyMemoryReturnsToZero(t *testing.T) {
	t.Parallel()
	c := NewConcurrency()
	var releases []func()
	for i := range 1000 {
		r, ok := c.Acquire(fmt.Sprint("t", i), 1)
		if !ok {
			t.Fatal("refused")
		}
		releases = append(releases, r)
	}
	if c.Len() != 1000 {
		t.Fatalf("Len() = %d, want 1000", c.Len())
	}
	for _, r := range releases {
		r()
	}
	if c.Len() != 0 {
		t.Fatalf("Len() = %d after releasing all, want 0", c.Len())
	}
}

// TryAcquire and Release are Acquire's slots without the release func:
// the same cap, shared with Acquire, and no allocation. (Not parallel:
// AllocsPerRun.)
func TestConcurrencyTryAcquire(t *testing.T) {
	c := NewConcurrency()
	if !c.TryAcquire("a", 2) || !c.TryAcquire("a", 2) {
		t.Fatal("TryAcquire refused a key under its cap")
	}
	if c.TryAcquire("a", 2) {
		t.Fatal("TryAcquire took a third slot with max 2")
	}
	if _, ok := c.Acquire("a", 2); ok {
		t.Fatal("Acquire took a slot TryAcquire holds")
	}
	c.Release("a")
	if got := c.InFlight("a"); got != 1 {
		t.Fatalf("InFlight(a) = %d after one Release, want 1", got)
	}
	release, ok := c.Acquire("a", 2)
	if !ok {
		t.Fatal("the released slot is not reusable")
	}
	release()
	c.Release("a")
	if n := c.Len(); n != 0 {
		t.Fatalf("Len() = %d after every slot was released, want 0", n)
	}
	c.Release("a") // nothing in flight: nothing to do
	if got := c.InFlight("a"); got != 0 {
		t.Fatalf("InFlight(a) = %d after releasing an idle key, want 0", got)
	}
	for range 10 {
		if !c.TryAcquire("u", 0) {
			t.Fatal("max 0 refused")
		}
	}
	if c.Len() != 0 {
		t.Fatal("unlimited key tracked")
	}
	if allocs := testing.AllocsPerRun(100, func() {
		if c.TryAcquire("a", 1) {
			c.Release("a")
		}
	}); allocs != 0 {
		t.Fatalf("TryAcquire+Release made %.0f allocations, want 0", allocs)
	}
}
