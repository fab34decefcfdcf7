package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"
)

// Policy says what a Failover does when its primary limiter cannot answer.
type Policy int

const (
	// FailOpen allows requests the primary could not check (or asks
	// FailoverOptions.Fallback), logs a rate-limited warning and reports
	// each such request to OnError. Availability over strictness.
	FailOpen Policy = iota
	// FailClosed refuses them with an error wrapping ErrUnavailable, which
	// the server answers with 503. Strictness over availability.
	FailClosed
)

// String returns "fail-open" or "fail-closed".
func (p Policy) String() string {
	switch p {
	case FailOpen:
		return "fail-open"
	case FailClosed:
		return "fail-closed"
	}
	return "Policy(" + fmt.Sprint(int(p)) + ")"
}

// FailoverOptions configure NewFailover. A nil *FailoverOptions means all
// defaults.
type FailoverOptions struct {
	// Logger receives a warning when the primary fails (at most one every
	// ten seconds while it keeps failing) and a notice when it recovers.
	// Nil discards logs.
	Logger *slog.Logger
	// OnError, if set, is called once for every request answered without
	// the primary: with the primary's error when it was tried and failed,
	// or with an error wrapping ErrUnavailable when it was skipped during
	// the cooldown. Use it to count degraded decisions in a metric. It
	// must be safe for concurrent use and fast. Nil means no hook.
	OnError func(err error)
	// Cooldown is how long the primary is skipped after a failure, so a
	// dead Redis does not add a connection timeout to every request. When
	// it ends, one request probes the primary (the others keep skipping
	// it); on success the primary is used again. Zero means one second.
	Cooldown time.Duration
	// Fallback, with FailOpen, decides the requests the primary could not
	// check, for example a Memory limiter with the same limits (per-replica
	// budgets are looser than shared ones but better than none). Nil means
	// allow them all. Ignored with FailClosed.
	Fallback Limiter
	// Now is the clock for the cooldown. Nil means time.Now.
	Now func() time.Time
}

// errCoolingDown is what OnError and FailClosed callers see for requests that
// skipped the primary during the cooldown.
var errCoolingDown = fmt.Errorf("%w (skipped during cooldown after a recent failure)", ErrUnavailable)

// failover wraps a primary limiter with a failure policy and a circuit
// breaker.
type failover struct {
	primary  Limiter
	policy   Policy
	log      *slog.Logger
	onError  func(error)
	cooldown int64
	fallback Limiter
	clock    func() time.Time
	base     time.Time

	// downUntil is 0 while the primary is healthy; otherwise the time
	// (nanoseconds since base, at least 1) before which it is skipped.
	downUntil atomic.Int64
	lastWarn  atomic.Int64 // nanoseconds since base of the last warning, 0 = never
}

// warnEvery is the minimum gap between two "backend unavailable" warnings.
const warnEvery = 10 * time.Second

// NewFailover returns a Limiter that asks primary and, when primary fails
// (any error other than the caller's own context ending or ErrInvalidKey),
// applies policy p: FailOpen allows, FailClosed returns an error wrapping
// ErrUnavailable. After a failure the primary is skipped for
// FailoverOptions.Cooldown, then tried again; it recovers by itself with no
// new limiter needed. o may be nil.
func NewFailover(primary Limiter, p Policy, o *FailoverOptions) Limiter {
	if o == nil {
		o = &FailoverOptions{}
	}
	f := &failover{
		primary:  primary,
		policy:   p,
		log:      o.Logger,
		onError:  o.OnError,
		cooldown: int64(o.Cooldown),
		fallback: o.Fallback,
		clock:    o.Now,
	}
	if f.log == nil {
		f.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if f.cooldown <= 0 {
		f.cooldown = int64(time.Second)
	}
	if p != FailOpen {
		f.fallback = nil
	}
	if f.clock != nil {
		f.base = f.clock()
	} else {
		f.base = time.Now()
	}
	return f
}

// now returns nanoseconds since f.base, always >= 1 so that 0 can mean
// "healthy" in downUntil.
func (f *failover) now() int64 {
	var d time.Duration
	if f.clock != nil {
		d = f.clock().Sub(f.base)
	} else {
		d = time.Since(f.base)
	}
	return max(1, int64(d))
}

// tryPrimary reports whether this request should ask the primary: always
// while healthy; during the cooldown never; after it, only the one request
// that wins the race to probe (the cooldown restarts for the others).
func (f *failover) tryPrimary(now int64) bool {
	down := f.downUntil.Load()
	if down == 0 {
		return true
	}
	if now < down {
		return false
	}
	return f.downUntil.CompareAndSwap(down, now+f.cooldown)
}

// Allow implements Limiter.
func (f *failover) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	if key == "" {
		return Decision{}, ErrInvalidKey
	}
	if !f.tryPrimary(f.now()) {
		return f.degraded(ctx, key, l, errCoolingDown)
	}
	d, err := f.primary.Allow(ctx, key, l)
	if err == nil {
		if f.downUntil.Swap(0) != 0 {
			f.log.InfoContext(ctx, "rate-limit backend recovered", slog.String("policy", f.policy.String()))
		}
		return d, nil
	}
	if ctx.Err() != nil || errors.Is(err, ErrInvalidKey) {
		// The caller gave up or misused the API: not the backend's fault.
		return Decision{}, err
	}
	now := f.now()
	f.downUntil.Store(now + f.cooldown)
	if last := f.lastWarn.Load(); last == 0 || now-last >= int64(warnEvery) {
		if f.lastWarn.CompareAndSwap(last, now) {
			f.log.WarnContext(ctx, "rate-limit backend unavailable; deciding without it",
				slog.String("policy", f.policy.String()),
				slog.Duration("retry_in", time.Duration(f.cooldown)),
				slog.String("error", err.Error()))
		}
	}
	return f.degraded(ctx, key, l, err)
}

// degraded answers a request without the primary, according to the policy.
func (f *failover) degraded(ctx context.Context, key string, l Limit, cause error) (Decision, error) {
	if f.onError != nil {
		f.onError(cause)
	}
	if f.policy == FailClosed {
		if errors.Is(cause, ErrUnavailable) {
			return Decision{}, cause
		}
		return Decision{}, fmt.Errorf("%w: %w", ErrUnavailable, cause)
	}
	if f.fallback != nil {
		return f.fallback.Allow(ctx, key, l)
	}
	l = l.Effective()
	if l.Unlimited() {
		return unlimitedDecision(), nil
	}
	// The shared state is unknown: report a full budget.
	return Decision{Allowed: true, Limit: l, Remaining: l.Burst}, nil
}
