package ratelimit

import (
	"context"
	"errors"
	"math"
	"time"
)

// ErrUnavailable means the shared rate-limit state (Redis) could not be
// consulted, so no decision was made. The server answers such a request with
// 503 Service Unavailable; the operator should check the Redis connection.
// A Failover with FailOpen never returns it.
var ErrUnavailable = errors.New("ratelimit: rate-limit backend unavailable; check the Redis connection or configure fail-open")

// ErrInvalidKey is returned for an empty key. Callers pass the tenant id (or
// "<tenant id>|u|<user>") as the key; an empty key is a programming error,
// never something a request can cause.
var ErrInvalidKey = errors.New("ratelimit: empty rate-limit key; pass the tenant id as the key")

// Limit is a request budget: PerMinute requests per minute on average, with
// up to Burst of them arriving at once.
type Limit struct {
	// PerMinute is the sustained rate in requests per minute. Zero or
	// negative means unlimited: every request is allowed and no state is
	// kept.
	PerMinute int
	// Burst is how many requests may arrive at the same instant when the
	// budget is full (the budget's capacity). Zero or negative means the
	// default, DefaultBurst(PerMinute): one minute's worth of requests.
	Burst int
}

// DefaultBurst is the burst used when Limit.Burst is zero: one minute's
// worth of the sustained rate (perMinute), at least 1. A tenant allowed 100
// requests per minute starts with all 100 available, so an agent's first
// burst of parallel calls is admitted; after that requests pass at the
// sustained rate (one every 600 ms at 100/min).
//
// This is the only place the default is decided: configuration and the
// server pass a zero Burst through rather than computing one.
func DefaultBurst(perMinute int) int {
	return max(1, perMinute)
}

// Unlimited reports whether l admits every request (PerMinute <= 0).
func (l Limit) Unlimited() bool { return l.PerMinute <= 0 }

// Effective returns l with the default burst filled in. Decisions carry the
// effective limit.
func (l Limit) Effective() Limit {
	if l.PerMinute <= 0 {
		return Limit{PerMinute: 0, Burst: 0}
	}
	if l.Burst <= 0 {
		l.Burst = DefaultBurst(l.PerMinute)
	}
	return l
}

// Decision is the outcome of one Allow call.
type Decision struct {
	// Allowed reports whether the request may proceed. A refused request
	// consumed nothing.
	Allowed bool
	// Limit is the effective limit the decision was made under (Burst
	// filled in; the zero Limit when unlimited).
	Limit Limit
	// Remaining is how many more requests would be allowed right now,
	// after this one. It is math.MaxInt when the limit is unlimited.
	Remaining int
	// RetryAfter is, for a refused request, the time until the next
	// request would be allowed. It is zero when Allowed.
	RetryAfter time.Duration
	// ResetAfter is the time until the budget is full again (Remaining
	// would equal Burst).
	ResetAfter time.Duration
}

// Limiter decides whether the request identified by key may proceed under
// limit l, and consumes one unit of the key's budget when it may.
//
// Keys name budgets: the server uses "<tenant id>" for the per-tenant budget
// and "<tenant id>|u|<user>" for the per-user budget inside it. Keys never
// share state with one another.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
}

// unlimitedDecision is what every limiter answers for l.PerMinute <= 0.
func unlimitedDecision() Decision {
	return Decision{Allowed: true, Remaining: math.MaxInt}
}

// GCRA (generic cell rate algorithm), in integer time units of the caller's
// choice (nanoseconds for Memory, microseconds for Redis).
//
// The state of a key is one number, its theoretical arrival time (TAT): the
// time at which the key's budget would be full again. A key whose TAT is in
// the past is indistinguishable from a key never seen, which is why idle
// state can be dropped.
//
// With emission interval T = 1 minute / PerMinute and tolerance
// tau = Burst × T, a request at time now is allowed iff
// max(TAT, now) + T - tau <= now; when allowed, TAT becomes max(TAT, now) + T.
// From a full budget this admits Burst requests at once and then one every T,
// with fractional refill (at 100/min a unit returns every 600 ms).

// gcraParams are T and tau in one time unit.
type gcraParams struct {
	interval int64 // T
	tau      int64 // Burst × T
}

// maxTauNanos caps the tolerance so now+tau never overflows: about 100 years.
const maxTauNanos = int64(100 * 365 * 24 * time.Hour)

// paramsFor converts an effective, limited Limit into GCRA parameters in
// units of unit per second (1e9 for nanoseconds, 1e6 for microseconds),
// capping tau at maxTau.
func paramsFor(l Limit, perMinuteUnits int64, maxTau int64) gcraParams {
	pm := int64(l.PerMinute)
	interval := (perMinuteUnits + pm/2) / pm // rounded
	if interval < 1 {
		interval = 1
	}
	tau := maxTau
	if int64(l.Burst) <= maxTau/interval {
		tau = int64(l.Burst) * interval
	}
	return gcraParams{interval: interval, tau: tau}
}

// gcraResult is one GCRA step, in the caller's time unit.
type gcraResult struct {
	allowed   bool
	tat       int64 // the new TAT when allowed; unchanged otherwise
	remaining int64
	retry     int64
	reset     int64
}

// gcra runs one step for a key whose stored TAT is tat (pass now, or
// anything <= now, for a key with no state).
func gcra(tat, now int64, p gcraParams) gcraResult {
	if tat < now {
		tat = now
	}
	next := tat + p.interval
	allowAt := next - p.tau
	if allowAt > now {
		return gcraResult{allowed: false, tat: tat, retry: allowAt - now, reset: tat - now}
	}
	return gcraResult{
		allowed:   true,
		tat:       next,
		remaining: (now + p.tau - next) / p.interval,
		reset:     next - now,
	}
}

// decision turns a step in unit-sized time units into a Decision.
func (r gcraResult) decision(l Limit, unit time.Duration) Decision {
	return Decision{
		Allowed:    r.allowed,
		Limit:      l,
		Remaining:  int(r.remaining),
		RetryAfter: time.Duration(r.retry) * unit,
		ResetAfter: time.Duration(r.reset) * unit,
	}
}
