package ratelimit

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// newLimiterFunc builds a fresh limiter (with no state) reading clock.
type newLimiterFunc func(t *testing.T, clock func() time.Time) Limiter

// step is one Allow call in a scripted scenario.
type step struct {
	advance time.Duration // moved on the clock before the call
	key     string        // "" means "a"
	want    Decision
}

// runContract is the behaviour every Limiter backend must show.
func runContract(t *testing.T, newL newLimiterFunc) {
	ctx := context.Background()

	scenarios := []struct {
		name  string
		limit Limit
		steps []step
	}{
		{
			name:  "fractional refill at 100/min: next unit after 600ms, not 1s",
			limit: Limit{PerMinute: 100, Burst: 1},
			steps: []step{
				{want: Decision{Allowed: true, Limit: Limit{100, 1}, Remaining: 0, ResetAfter: 600 * time.Millisecond}},
				{want: Decision{Allowed: false, Limit: Limit{100, 1}, RetryAfter: 600 * time.Millisecond, ResetAfter: 600 * time.Millisecond}},
				{advance: 599 * time.Millisecond, want: Decision{Allowed: false, Limit: Limit{100, 1}, RetryAfter: time.Millisecond, ResetAfter: time.Millisecond}},
				{advance: time.Millisecond, want: Decision{Allowed: true, Limit: Limit{100, 1}, ResetAfter: 600 * time.Millisecond}},
			},
		},
		{
			name:  "burst honoured, then one per interval",
			limit: Limit{PerMinute: 60, Burst: 5},
			steps: []step{
				{want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 4, ResetAfter: 1 * time.Second}},
				{want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 3, ResetAfter: 2 * time.Second}},
				{want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 2, ResetAfter: 3 * time.Second}},
				{want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 1, ResetAfter: 4 * time.Second}},
				{want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 0, ResetAfter: 5 * time.Second}},
				{want: Decision{Allowed: false, Limit: Limit{60, 5}, Remaining: 0, RetryAfter: time.Second, ResetAfter: 5 * time.Second}},
				// 2.5s later two and a half units are back: two requests pass.
				{advance: 2500 * time.Millisecond, want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 1, ResetAfter: 3500 * time.Millisecond}},
				{want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 0, ResetAfter: 4500 * time.Millisecond}},
				{want: Decision{Allowed: false, Limit: Limit{60, 5}, RetryAfter: 500 * time.Millisecond, ResetAfter: 4500 * time.Millisecond}},
				// Once the budget is full again the key is as good as new.
				{advance: 10 * time.Second, want: Decision{Allowed: true, Limit: Limit{60, 5}, Remaining: 4, ResetAfter: time.Second}},
			},
		},
		{
			name:  "default burst is one minute's worth",
			limit: Limit{PerMinute: 120},
			steps: []step{
				{want: Decision{Allowed: true, Limit: Limit{120, 120}, Remaining: 119, ResetAfter: 500 * time.Millisecond}},
			},
		},
		{
			name:  "unlimited when PerMinute is zero",
			limit: Limit{PerMinute: 0, Burst: 3},
			steps: []step{
				{want: Decision{Allowed: true, Remaining: math.MaxInt}},
				{want: Decision{Allowed: true, Remaining: math.MaxInt}},
			},
		},
		{
			name:  "unlimited when PerMinute is negative",
			limit: Limit{PerMinute: -1},
			steps: []step{
				{want: Decision{Allowed: true, Remaining: math.MaxInt}},
			},
		},
		{
			name:  "keys do not share budgets",
			limit: Limit{PerMinute: 60, Burst: 1},
			steps: []step{
				{key: "a", want: Decision{Allowed: true, Limit: Limit{60, 1}, ResetAfter: time.Second}},
				{key: "a", want: Decision{Allowed: false, Limit: Limit{60, 1}, RetryAfter: time.Second, ResetAfter: time.Second}},
				{key: "b", want: Decision{Allowed: true, Limit: Limit{60, 1}, ResetAfter: time.Second}},
				{key: "a|u|b", want: Decision{Allowed: true, Limit: Limit{60, 1}, ResetAfter: time.Second}},
			},
		},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			clock := newFakeClock()
			l := newL(t, clock.Now)
			for i, s := range sc.steps {
				clock.Advance(s.advance)
				key := s.key
				if key == "" {
					key = "a"
				}
				got, err := l.Allow(ctx, key, sc.limit)
				if err != nil {
					t.Fatalf("step %d: Allow: %v", i, err)
				}
				if diff := cmp.Diff(s.want, got); diff != "" {
					t.Fatalf("step %d (key %q): decision mismatch (-want +got):\n%s", i, key, diff)
				}
			}
		})
	}

	t.Run("7 per minute refills after about 8.57s", func(t *testing.T) {
		clock := newFakeClock()
		l := newL(t, clock.Now)
		lim := Limit{PerMinute: 7, Burst: 1}
		want := time.Minute / 7 // 8.571428571s
		mustAllow(t, l, "a", lim, true)
		d := mustAllow(t, l, "a", lim, false)
		if diff := d.RetryAfter - want; diff < -time.Microsecond || diff > time.Microsecond {
			t.Fatalf("RetryAfter = %v, want %v (±1µs)", d.RetryAfter, want)
		}
		clock.Advance(8571 * time.Millisecond)
		mustAllow(t, l, "a", lim, false)
		clock.Advance(time.Millisecond)
		mustAllow(t, l, "a", lim, true)
	})

	t.Run("empty key is refused with ErrInvalidKey", func(t *testing.T) {
		l := newL(t, newFakeClock().Now)
		if _, err := l.Allow(ctx, "", Limit{PerMinute: 10}); !errors.Is(err, ErrInvalidKey) {
			t.Fatalf("Allow(\"\") error = %v, want ErrInvalidKey", err)
		}
	})

	t.Run("accuracy: 600/min over 10s is burst + 100", func(t *testing.T) {
		clock := newFakeClock()
		l := newL(t, clock.Now)
		checkAccuracy(t, []Limiter{l}, clock)
	})

	t.Run("a flooding key never makes another key see a refusal", func(t *testing.T) {
		clock := newFakeClock()
		l := newL(t, clock.Now)
		lim := Limit{PerMinute: 60, Burst: 2}
		refusedNoisy, refusedQuiet := 0, 0
		for i := range 500 {
			clock.Advance(10 * time.Millisecond)
			for range 4 {
				if !mustAllowAny(t, l, "noisy", lim).Allowed {
					refusedNoisy++
				}
			}
			if i%100 == 0 { // the quiet key sends 1 request/s: within its budget
				if !mustAllowAny(t, l, "quiet", lim).Allowed {
					refusedQuiet++
				}
			}
		}
		if refusedNoisy == 0 {
			t.Fatal("the flooding key was never refused; the test proves nothing")
		}
		if refusedQuiet != 0 {
			t.Fatalf("quiet key refused %d times while another key flooded", refusedQuiet)
		}
	})

	t.Run("100 per minute admits 100 parallel requests, then refuses the 101st", func(t *testing.T) {
		clock := newFakeClock() // frozen: no refill during the test
		l := newL(t, clock.Now)
		lim := Limit{PerMinute: 100} // Burst 0: the default
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 100 {
			wg.Go(func() {
				d, err := l.Allow(ctx, "agent", lim)
				if err != nil {
					t.Error(err)
					return
				}
				if d.Allowed {
					allowed.Add(1)
				}
			})
		}
		wg.Wait()
		if got := allowed.Load(); got != 100 {
			t.Fatalf("allowed %d of 100 parallel requests at 100/min, want all 100", got)
		}
		d := mustAllow(t, l, "agent", lim, false)
		if d.Limit != (Limit{PerMinute: 100, Burst: 100}) || d.RetryAfter != 600*time.Millisecond {
			t.Fatalf("101st request: %+v, want limit {100 100} and retry after 600ms", d)
		}
		clock.Advance(600 * time.Millisecond)
		mustAllow(t, l, "agent", lim, true)
	})

	t.Run("concurrent callers on one key admit exactly the burst", func(t *testing.T) {
		clock := newFakeClock() // frozen: no refill during the test
		l := newL(t, clock.Now)
		lim := Limit{PerMinute: 60, Burst: 25}
		var allowed atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 20 {
					d, err := l.Allow(ctx, "hot", lim)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := allowed.Load(); got != 25 {
			t.Fatalf("allowed %d of 160 concurrent requests, want exactly the burst 25", got)
		}
	})
}

// checkAccuracy sends one request every 5ms of simulated time for 10s
// (t = 0, 5ms, …, 10s inclusive: 2001 requests), spread round-robin over
// limiters that share one budget, at 600/min with burst 10.
//
// GCRA admits the burst at once (the first 10 requests, t = 0…45ms) and then
// exactly one per emission interval T = 100ms, the k-th extra one at k×T, for
// k = 1…100 (t = 100ms…10s). So exactly 10 + 100 = 110 are admitted: the
// burst plus 600/min × 10s. The brief's criterion is ±2% of that.
func checkAccuracy(t *testing.T, ls []Limiter, clock *fakeClock) {
	t.Helper()
	const want = 110
	lim := Limit{PerMinute: 600, Burst: 10}
	admitted := 0
	for i := 0; i <= 2000; i++ {
		if i > 0 {
			clock.Advance(5 * time.Millisecond)
		}
		if mustAllowAny(t, ls[i%len(ls)], "acc", lim).Allowed {
			admitted++
		}
	}
	if math.Abs(float64(admitted-want)) > 0.02*want {
		t.Fatalf("admitted %d requests, want %d ±2%%", admitted, want)
	}
	if admitted != want {
		t.Fatalf("admitted %d requests, want exactly %d (within ±2%%, but GCRA on a fake clock is exact)", admitted, want)
	}
}

func mustAllowAny(t *testing.T, l Limiter, key string, lim Limit) Decision {
	t.Helper()
	d, err := l.Allow(context.Background(), key, lim)
	if err != nil {
		t.Fatalf("Allow(%q): %v", key, err)
	}
	return d
}

func mustAllow(t *testing.T, l Limiter, key string, lim Limit, want bool) Decision {
	t.Helper()
	d := mustAllowAny(t, l, key, lim)
	if d.Allowed != want {
		t.Fatalf("Allow(%q) = %+v, want Allowed=%v", key, d, want)
	}
	return d
}
