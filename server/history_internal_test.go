package server

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// t0 is the start of a bucket.
var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

func TestHistorySeries(t *testing.T) {
	t.Parallel()
	h := newHistory(10)
	a := tenant.ID("tA")
	for i := range 10 {
		h.record(a, t0.Add(time.Duration(i)*time.Second), audit.OutcomeOK, "", time.Millisecond)
	}
	h.record(a, t0.Add(time.Minute), audit.OutcomeError, "", 3*time.Millisecond)
	h.record(a, t0.Add(2*time.Minute), audit.OutcomeRefused, "rate_limited_tenant", 100*time.Microsecond)
	h.record(a, t0.Add(2*time.Minute), audit.OutcomeRefused, "rate_limited_tenant", 100*time.Microsecond)
	h.record(a, t0.Add(HistoryBucket+time.Second), audit.OutcomeRefused, "suspended", 200*time.Microsecond)

	now := t0.Add(3 * HistoryBucket)
	s := h.series(a, now, t0)
	if len(s.Points) != 4 || !s.Points[0].Start.Equal(t0) || !s.Points[3].Start.Equal(t0.Add(3*HistoryBucket)) {
		t.Fatalf("points: %d from %v", len(s.Points), s.Points[0].Start)
	}
	p := s.Points[0]
	if p.Requests != 13 || p.Errors != 1 || p.Refused != 2 || p.Refusals["rate_limited_tenant"] != 2 || len(p.Refusals) != 1 {
		t.Errorf("first bucket: %+v", p)
	}
	if p.P50 < 500*time.Microsecond || p.P50 > 2*time.Millisecond {
		t.Errorf("p50 = %v, want about 1ms", p.P50)
	}
	if p.P99 < 1500*time.Microsecond || p.P99 > 6*time.Millisecond {
		t.Errorf("p99 = %v, want about 3ms", p.P99)
	}
	if q := s.Points[1]; q.Requests != 1 || q.Refusals["suspended"] != 1 {
		t.Errorf("second bucket: %+v", q)
	}
	if q := s.Points[2]; q.Requests != 0 || q.P50 != 0 || q.Refusals != nil {
		t.Errorf("empty bucket: %+v", q)
	}
	if s.Total.Requests != 14 || s.Total.Refused != 3 || s.Total.Errors != 1 {
		t.Errorf("total: %+v", s.Total)
	}
	if fmt.Sprint(s.Reasons) != "[rate_limited_tenant suspended]" {
		t.Errorf("reasons: %v", s.Reasons)
	}

	// Without since: the whole window, ending at now.
	full := h.series(a, now, time.Time{})
	if len(full.Points) != historySlots || full.Total.Requests != 14 {
		t.Errorf("whole window: %d points, %d requests", len(full.Points), full.Total.Requests)
	}
	// A day later the first bucket's slot is reused: its requests are
	// gone, the second bucket's are the window's oldest.
	later := t0.Add(HistoryWindow)
	h.record(a, later, audit.OutcomeOK, "", time.Millisecond)
	s = h.series(a, later, time.Time{})
	if s.Total.Requests != 2 || s.Points[0].Requests != 1 || s.Points[len(s.Points)-1].Requests != 1 {
		t.Errorf("a day later: total %d, first %d, want the second bucket's and the new request", s.Total.Requests, s.Points[0].Requests)
	}
	// A request stamped before the window (the clock stepped back) is dropped.
	h.record(a, t0, audit.OutcomeOK, "", time.Millisecond)
	if s = h.series(a, later, time.Time{}); s.Total.Requests != 2 {
		t.Errorf("stale request counted: %d", s.Total.Requests)
	}
}

// TestHistoryCrossTenant: tenant A's requests never appear in tenant B's
// series or summary, nor in an untracked tenant's.
func TestHistoryCrossTenant(t *testing.T) {
	t.Parallel()
	h := newHistory(10)
	a, b := tenant.ID("tA"), tenant.ID("tB")
	for i := range 50 {
		h.record(a, t0.Add(time.Duration(i)*time.Minute), audit.OutcomeRefused, "rate_limited_tenant", time.Millisecond)
	}
	h.record(b, t0, audit.OutcomeOK, "", time.Millisecond)
	now := t0.Add(time.Hour)
	sb := h.series(b, now, time.Time{})
	if sb.Total.Requests != 1 || sb.Total.Refused != 0 || len(sb.Reasons) != 0 {
		t.Errorf("B's series holds A's traffic: %+v", sb.Total)
	}
	if sum := h.summary(b, now, 24); sum.TotalRequests != 1 || sum.TotalRefused != 0 {
		t.Errorf("B's summary: %+v", sum)
	}
	if sc := h.series("tC", now, time.Time{}); sc.Total.Requests != 0 || len(sc.Points) != historySlots {
		t.Errorf("untracked tenant: %+v", sc.Total)
	}
	if sum := h.summary(a, now, 24); sum.TotalRequests != 50 || sum.TotalRefused != 50 || len(sum.Requests) != 24 {
		t.Errorf("A's summary: %+v", sum)
	}
}

// TestHistoryBound: a flood of distinct tenants, concurrently, never holds
// more than max of them; the least recently active go first, and each
// drop is counted.
func TestHistoryBound(t *testing.T) {
	t.Parallel()
	const max = 50
	h := newHistory(max)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 1000 {
				h.record(tenant.ID(fmt.Sprintf("t%d-%d", g, i)), t0, audit.OutcomeOK, "", time.Millisecond)
			}
		})
	}
	wg.Wait()
	if n := h.tracked(); n != max {
		t.Fatalf("%d tenants tracked, want %d", n, max)
	}
	entries := 0
	h.tenants.Range(func(any, any) bool { entries++; return true })
	listed := 0
	for th := h.newest; th != nil; th = th.next {
		listed++
	}
	if entries != max || listed != max {
		t.Fatalf("map holds %d, list %d, want %d", entries, listed, max)
	}
	if got, want := h.evicted.Load(), uint64(4000-max); got != want {
		t.Errorf("dropped %d, want %d", got, want)
	}

	// Recency: keep is active again in a later bucket, so the others go
	// before it.
	h = newHistory(max)
	keep := tenant.ID("t-keep")
	h.record(keep, t0, audit.OutcomeOK, "", time.Millisecond)
	for i := range max - 1 {
		h.record(tenant.ID(fmt.Sprintf("t%d", i)), t0, audit.OutcomeOK, "", time.Millisecond)
	}
	h.record(keep, t0.Add(HistoryBucket), audit.OutcomeOK, "", time.Millisecond)
	for i := range 10 {
		h.record(tenant.ID(fmt.Sprintf("new%d", i)), t0.Add(HistoryBucket), audit.OutcomeOK, "", time.Millisecond)
	}
	if _, ok := h.tenants.Load(keep); !ok {
		t.Error("the recently active tenant was dropped")
	}
	for i := range 10 {
		if _, ok := h.tenants.Load(tenant.ID(fmt.Sprintf("t%d", i))); ok {
			t.Errorf("t%d, among the least recently active, was kept", i)
		}
	}
	if s := h.series(keep, t0.Add(HistoryBucket), time.Time{}); s.Total.Requests != 2 {
		t.Errorf("keep lost its history: %d requests", s.Total.Requests)
	}
}

func TestLatencyBucket(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {63 * time.Microsecond, 0}, {64 * time.Microsecond, 1}, {127 * time.Microsecond, 1},
		{128 * time.Microsecond, 2}, {time.Millisecond, 4}, {time.Hour, historyLatencyBuckets - 1},
	} {
		if got := latencyBucket(c.d); got != c.want {
			t.Errorf("latencyBucket(%v) = %d, want %d", c.d, got, c.want)
		}
		lo, hi := latencyBounds(c.want)
		if c.want < historyLatencyBuckets-1 && (c.d < lo || c.d >= hi) {
			t.Errorf("%v outside its bucket [%v, %v)", c.d, lo, hi)
		}
	}
}

// TestHistoryReasonsBounded: a bucket keeps at most maxHistoryReasons
// reasons; the rest count as other, none are lost.
func TestHistoryReasonsBounded(t *testing.T) {
	t.Parallel()
	h := newHistory(1)
	for i := range 40 {
		h.record("tA", t0, audit.OutcomeRefused, fmt.Sprintf("reason_%d", i), time.Millisecond)
	}
	s := h.series("tA", t0, t0)
	if len(s.Reasons) != maxHistoryReasons {
		t.Errorf("%d reasons kept, want %d", len(s.Reasons), maxHistoryReasons)
	}
	var sum uint64
	for _, n := range s.Total.Refusals {
		sum += n
	}
	if sum != 40 || s.Total.Refusals[HistoryReasonOther] != 40-(maxHistoryReasons-1) {
		t.Errorf("refusals %v", s.Total.Refusals)
	}
}

// BenchmarkHistoryRecord is the history's cost on the request path: 1,000
// tenants, all cores.
func BenchmarkHistoryRecord(b *testing.B) {
	h := newHistory(DefaultHistoryTenants)
	ids := make([]tenant.ID, 1000)
	for i := range ids {
		ids[i] = tenant.ID(fmt.Sprintf("t%04d", i))
		h.record(ids[i], t0, audit.OutcomeOK, "", time.Millisecond)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			h.record(ids[i%len(ids)], t0, audit.OutcomeOK, "", time.Millisecond)
		}
	})
}

// TestHistoryNewTenantCost: with more tenants active than the history
// keeps, every request of an untracked tenant adds it again (dropping
// another), so adding one must stay cheap: a page of its ring, not the
// whole ring (2.3 KB of pointers, about 2.6 KB a request in all, before
// the ring was paged).
func TestHistoryNewTenantCost(t *testing.T) {
	const max, n = 100, 2000
	h := newHistory(max)
	ids := make([]tenant.ID, n)
	for i := range ids {
		ids[i] = tenant.ID(fmt.Sprintf("t%05d", i))
	}
	for _, id := range ids[:2*max] { // full, and dropping from now on
		h.record(id, t0, audit.OutcomeOK, "", time.Millisecond)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for _, id := range ids[2*max:] {
		h.record(id, t0, audit.OutcomeOK, "", time.Millisecond)
	}
	runtime.ReadMemStats(&after)
	per := (after.TotalAlloc - before.TotalAlloc) / uint64(n-2*max)
	if per > 1024 {
		t.Errorf("adding a tenant to a full history allocated %d bytes, want at most 1 KiB", per)
	}
	if got := h.evicted.Load(); got != n-max {
		t.Errorf("%d tenants dropped, want %d", got, n-max)
	}
	t.Logf("%d bytes per tenant added", per)
}
