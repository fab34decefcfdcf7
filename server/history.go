package server

import (
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// The metrics history: per tenant, the last HistoryWindow of requests in
// HistoryBucket steps, kept in memory for the operator console
// (Server.History, Server.HistorySummary). It is this replica's own view,
// fed by the same finished requests as the Prometheus metrics, with the
// same refusal reasons; it starts empty at every start.
const (
	// HistoryBucket is the width of one step of the history.
	HistoryBucket = 5 * time.Minute
	// HistoryWindow is how far back the history reaches.
	HistoryWindow = 24 * time.Hour
	// DefaultHistoryTenants is how many tenants the history keeps when
	// Options.HistoryTenants is 0.
	DefaultHistoryTenants = 1000
)

// historySlots is the length of a tenant's ring: one slot per bucket of
// the window.
const historySlots = int(HistoryWindow / HistoryBucket)

// historyPage is how many slots of a ring are allocated together, on the
// first request that falls in one of them (two hours of buckets): a
// tenant seen once costs one page, not the whole ring, which matters when
// more tenants are active than the history keeps and each request of an
// untracked one adds it again.
const historyPage = 24

var _ [historySlots % historyPage]struct{} = [0]struct{}{} // pages tile the ring

// The latency sketch: a fixed histogram of historyLatencyBuckets
// logarithmic buckets. Bucket 0 holds latencies below historyLatencyBase,
// bucket i (1 ≤ i < last) those in [base·2^(i-1), base·2^i), the last
// everything longer (base·2^22 ≈ 4.5 minutes). A quantile is interpolated
// inside its bucket, so it is within a factor of 2 of the truth and
// usually much closer: good enough for a p50/p99 chart, not for an SLO.
const (
	historyLatencyBase    = 64 * time.Microsecond
	historyLatencyBuckets = 24
)

// maxHistoryReasons bounds the distinct refusal reasons one bucket keeps;
// reasons come from a fixed list (see classify), so this never bites
// unless that list grows past it. Further reasons count as "other".
const maxHistoryReasons = 16

// HistoryReasonOther counts refusals of reasons past the bound above.
const HistoryReasonOther = "other"

// Memory: a tracked tenant costs about 300 B (its entry and a page of
// slots) plus, for each further two hours with traffic, a page of 192 B,
// and for each of its buckets that saw traffic, about 150 B and 24 B per
// distinct refusal reason in it: at most about 46 KB for a tenant busy
// every 5 minutes of the day with a few kinds of refusal.
// Options.HistoryTenants bounds the tenants (1,000 by default: at most
// about 46 MB, typically far less since few tenants are busy all day).

// historyBucket is one HistoryBucket of one tenant.
type historyBucket struct {
	epoch               int64 // which bucket of time it holds (unix time / HistoryBucket)
	ok, failed, refused uint32
	latency             [historyLatencyBuckets]uint32
	reasons             []reasonCount
}

type reasonCount struct {
	reason string
	n      uint32
}

// tenantHistory is one tenant's ring. Its mutex is taken once per
// request of that tenant only, so tenants never contend with each other.
type tenantHistory struct {
	id         tenant.ID
	last       atomic.Int64 // epoch of its latest request: its place in the recency list
	prev, next *tenantHistory
	mu         sync.Mutex
	ring       [historySlots / historyPage]*[historyPage]*historyBucket // pages allocated on first use
}

// history is every tracked tenant's ring, at most max of them: adding one
// more drops the least recently active.
type history struct {
	max     int
	tenants sync.Map // tenant.ID → *tenantHistory, read without a lock

	mu      sync.Mutex // guards count, the recency list and insertions
	count   int
	newest  *tenantHistory // head of the recency list (most recent first)
	oldest  *tenantHistory
	evicted atomic.Uint64
}

func newHistory(max int) *history { return &history{max: max} }

func epochOf(t time.Time) int64 {
	return t.UnixNano() / int64(HistoryBucket)
}

// record counts one finished request of tenant id, finished at now.
func (h *history) record(id tenant.ID, now time.Time, outcome, reason string, latency time.Duration) {
	e := epochOf(now)
	th := h.entry(id, e)
	th.mu.Lock()
	defer th.mu.Unlock()
	n := int64(historySlots)
	i := (e%n + n) % n // never negative, whatever the clock says
	page := &th.ring[i/historyPage]
	if *page == nil {
		*page = new([historyPage]*historyBucket)
	}
	slot := &(*page)[i%historyPage]
	b := *slot
	switch {
	case b == nil:
		b = &historyBucket{epoch: e}
		*slot = b
	case b.epoch > e:
		return // older than the window (a clock step back): dropped
	case b.epoch < e:
		*b = historyBucket{epoch: e, reasons: b.reasons[:0]}
	}
	switch outcome {
	case audit.OutcomeOK:
		b.ok++
	case audit.OutcomeRefused:
		b.refused++
		b.addReason(reason)
	default:
		b.failed++
	}
	b.latency[latencyBucket(latency)]++
}

func (b *historyBucket) addReason(reason string) {
	for i := range b.reasons {
		if b.reasons[i].reason == reason {
			b.reasons[i].n++
			return
		}
	}
	if len(b.reasons) >= maxHistoryReasons-1 && reason != HistoryReasonOther {
		reason = HistoryReasonOther
		for i := range b.reasons {
			if b.reasons[i].reason == reason {
				b.reasons[i].n++
				return
			}
		}
	}
	b.reasons = append(b.reasons, reasonCount{reason: reason, n: 1})
}

// latencyBucket is the sketch bucket of d.
func latencyBucket(d time.Duration) int {
	if d < historyLatencyBase {
		return 0
	}
	// floor(log2(d/base)) + 1, by the bit length of the integer ratio.
	i := bits.Len64(uint64(d / historyLatencyBase)) // d/base ≥ 1: bit length ≥ 1
	return min(i, historyLatencyBuckets-1)
}

// latencyBounds is the range [lo, hi) of sketch bucket i; the last
// bucket's hi is twice its lo, for interpolation.
func latencyBounds(i int) (lo, hi time.Duration) {
	if i == 0 {
		return 0, historyLatencyBase
	}
	lo = historyLatencyBase << (i - 1)
	return lo, 2 * lo
}

// entry returns the tenant's ring, adding it (and dropping the least
// recently active tenant if that makes too many) on its first request,
// and keeps the recency list in order, which takes the lock once per
// tenant and bucket of time.
func (h *history) entry(id tenant.ID, e int64) *tenantHistory {
	if v, ok := h.tenants.Load(id); ok {
		th := v.(*tenantHistory)
		if th.last.Load() != e {
			h.mu.Lock()
			if th.last.Load() != e && h.listed(th) {
				th.last.Store(e)
				h.unlink(th)
				h.pushFront(th)
			}
			h.mu.Unlock()
		}
		return th
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if v, ok := h.tenants.Load(id); ok { // added meanwhile
		return v.(*tenantHistory)
	}
	th := &tenantHistory{id: id}
	th.last.Store(e)
	for h.count >= h.max && h.oldest != nil {
		old := h.oldest
		h.unlink(old)
		h.tenants.Delete(old.id)
		h.count--
		h.evicted.Add(1)
	}
	h.pushFront(th)
	h.tenants.Store(id, th)
	h.count++
	return th
}

// listed reports whether th is still in the list (not dropped). h.mu held.
func (h *history) listed(th *tenantHistory) bool {
	return th.prev != nil || h.newest == th
}

func (h *history) pushFront(th *tenantHistory) {
	th.prev, th.next = nil, h.newest
	if h.newest != nil {
		h.newest.prev = th
	}
	h.newest = th
	if h.oldest == nil {
		h.oldest = th
	}
}

func (h *history) unlink(th *tenantHistory) {
	if th.prev != nil {
		th.prev.next = th.next
	} else {
		h.newest = th.next
	}
	if th.next != nil {
		th.next.prev = th.prev
	} else {
		h.oldest = th.prev
	}
	th.prev, th.next = nil, nil
}

// HistoryPoint is one step of a tenant's history: the requests that
// finished in [Start, Start+HistoryBucket).
type HistoryPoint struct {
	Start time.Time
	// Requests counts every request: served (ok or failed) and refused.
	Requests uint64
	// Errors counts requests served with an error (a tool or method
	// failed); Refused those the request path refused.
	Errors, Refused uint64
	// Refusals counts Refused by reason, with the names of the
	// tenantmcp_requests_refused_total metric's reason label
	// ("rate_limited_tenant", "suspended", …). Nil when none.
	Refusals map[string]uint64
	// P50 and P99 estimate the median and 99th percentile latency of the
	// requests (served and refused); 0 when there were none.
	P50, P99 time.Duration
}

// HistorySeries is a tenant's history from a start time to now, oldest
// first, one point per HistoryBucket (those without requests too).
type HistorySeries struct {
	Tenant tenant.ID
	// Bucket is the width of each point (HistoryBucket).
	Bucket time.Duration
	Points []HistoryPoint
	// Reasons are the refusal reasons that occur in Points, sorted.
	Reasons []string
	// Total sums Points (its Start is the first point's), with latency
	// quantiles over all of them.
	Total HistoryPoint
}

// HistorySummary is a tenant's last HistoryWindow in a few equal steps,
// oldest first, for a sparkline.
type HistorySummary struct {
	Requests, Refused []uint64
	// TotalRequests and TotalRefused sum the steps.
	TotalRequests, TotalRefused uint64
}

// sketch accumulates buckets into one point.
type sketch struct {
	p       HistoryPoint
	latency [historyLatencyBuckets]uint64
}

func (k *sketch) add(b *historyBucket) {
	k.p.Requests += uint64(b.ok) + uint64(b.failed) + uint64(b.refused)
	k.p.Errors += uint64(b.failed)
	k.p.Refused += uint64(b.refused)
	for _, r := range b.reasons {
		if k.p.Refusals == nil {
			k.p.Refusals = map[string]uint64{}
		}
		k.p.Refusals[r.reason] += uint64(r.n)
	}
	for i, n := range b.latency {
		k.latency[i] += uint64(n)
	}
}

func (k *sketch) point() HistoryPoint {
	p := k.p
	p.P50, p.P99 = k.quantile(0.50), k.quantile(0.99)
	return p
}

// quantile estimates the q-quantile of the sketch, interpolating inside
// its bucket; 0 for an empty sketch.
func (k *sketch) quantile(q float64) time.Duration {
	var total uint64
	for _, n := range k.latency {
		total += n
	}
	if total == 0 {
		return 0
	}
	rank := q * float64(total) // how many requests lie below the quantile
	var seen uint64
	for i, n := range k.latency {
		if n == 0 || float64(seen+n) < rank {
			seen += n
			continue
		}
		lo, hi := latencyBounds(i)
		frac := (rank - float64(seen)) / float64(n)
		return lo + time.Duration(math.Round(frac*float64(hi-lo)))
	}
	_, hi := latencyBounds(historyLatencyBuckets - 1)
	return hi
}

// snapshot copies the buckets of th in [from, to] (epochs) under its lock.
func (th *tenantHistory) snapshot(from, to int64) []historyBucket {
	th.mu.Lock()
	defer th.mu.Unlock()
	var out []historyBucket
	for _, page := range th.ring {
		if page == nil {
			continue
		}
		for _, b := range page {
			if b != nil && b.epoch >= from && b.epoch <= to {
				c := *b
				c.reasons = slices.Clone(b.reasons)
				out = append(out, c)
			}
		}
	}
	return out
}

// buckets returns the tenant's buckets in [from, to], or nil if the
// tenant is not tracked.
func (h *history) buckets(id tenant.ID, from, to int64) []historyBucket {
	v, ok := h.tenants.Load(id)
	if !ok {
		return nil
	}
	return v.(*tenantHistory).snapshot(from, to)
}

// window is the range of epochs of the history at now, starting no
// earlier than since.
func window(now, since time.Time) (from, to int64) {
	to = epochOf(now)
	from = to - int64(historySlots) + 1
	if s := epochOf(since); !since.IsZero() && s > from {
		from = min(s, to)
	}
	return from, to
}

func (h *history) series(id tenant.ID, now, since time.Time) HistorySeries {
	from, to := window(now, since)
	bs := h.buckets(id, from, to)
	steps := make([]sketch, to-from+1)
	var total sketch
	for i := range bs {
		steps[bs[i].epoch-from].add(&bs[i])
		total.add(&bs[i])
	}
	s := HistorySeries{Tenant: id, Bucket: HistoryBucket, Points: make([]HistoryPoint, len(steps))}
	for i := range steps {
		s.Points[i] = steps[i].point()
		s.Points[i].Start = time.Unix(0, (from+int64(i))*int64(HistoryBucket)).UTC()
	}
	s.Total = total.point()
	s.Total.Start = s.Points[0].Start
	for r := range total.p.Refusals {
		s.Reasons = append(s.Reasons, r)
	}
	slices.Sort(s.Reasons)
	return s
}

func (h *history) summary(id tenant.ID, now time.Time, points int) HistorySummary {
	points = min(max(points, 1), historySlots)
	from, to := window(now, time.Time{})
	sum := HistorySummary{Requests: make([]uint64, points), Refused: make([]uint64, points)}
	for _, b := range h.buckets(id, from, to) {
		i := int(b.epoch-from) * points / historySlots
		n := uint64(b.ok) + uint64(b.failed) + uint64(b.refused)
		sum.Requests[i] += n
		sum.Refused[i] += uint64(b.refused)
		sum.TotalRequests += n
		sum.TotalRefused += uint64(b.refused)
	}
	return sum
}

// tracked is how many tenants the history holds.
func (h *history) tracked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.count
}

var (
	historyTenantsDesc = prometheus.NewDesc("tenantmcp_history_tenants",
		"Tenants whose last 24 hours of requests this replica keeps in memory for the console (at most server.history_tenants).", nil, nil)
	historyEvictedDesc = prometheus.NewDesc("tenantmcp_history_tenants_dropped_total",
		"Tenants dropped from the console's in-memory history to make room for another (the least recently active), because server.history_tenants were tracked.", nil, nil)
)

// Describe and Collect make the history a Prometheus collector of its
// own size.
func (h *history) Describe(ch chan<- *prometheus.Desc) {
	ch <- historyTenantsDesc
	ch <- historyEvictedDesc
}

func (h *history) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(historyTenantsDesc, prometheus.GaugeValue, float64(h.tracked()))
	ch <- prometheus.MustNewConstMetric(historyEvictedDesc, prometheus.CounterValue, float64(h.evicted.Load()))
}

// History returns tenant id's requests, refusals by reason and latency
// from since (zero: the whole HistoryWindow; never earlier than it) to
// now, as this replica served them. A tenant without requests in that
// time, or not tracked (Options.HistoryTenants), has points with zeros.
func (s *Server) History(id tenant.ID, since time.Time) HistorySeries {
	return s.history.series(id, s.opts.Now(), since)
}

// HistorySummary returns tenant id's last HistoryWindow of requests and
// refusals in points equal steps (1 to 288), for a sparkline.
func (s *Server) HistorySummary(id tenant.ID, points int) HistorySummary {
	return s.history.summary(id, s.opts.Now(), points)
}

// active lists up to n tracked tenants, the most recently active first.
func (h *history) active(n int) []tenant.ID {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []tenant.ID
	for th := h.newest; th != nil && len(out) < n; th = th.next {
		out = append(out, th.id)
	}
	return out
}

// HistoryTenants lists up to n tenants the history holds, the most
// recently active first (at HistoryBucket resolution).
func (s *Server) HistoryTenants(n int) []tenant.ID { return s.history.active(n) }
