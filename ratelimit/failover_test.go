package ratelimit

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// stubLimiter answers from a function and counts calls.
type stubLimiter struct {
	mu    sync.Mutex
	calls int
	err   error
}

func (s *stubLimiter) Allow(ctx context.Context, key string, l Limit) (Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return Decision{}, s.err
	}
	return Decision{Allowed: false, Limit: l.Effective(), RetryAfter: time.Second}, nil
}

func (s *stubLimiter) set(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *stubLimiter) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connection refused")

type failoverSetup struct {
	primary *stubLimiter
	clock   *fakeClock
	errs    []error
	logs    *bytes.Buffer
	l       Limiter
}

func setupFailover(t *testing.T, p Policy, fallback Limiter) *failoverSetup {
	t.Helper()
	s := &failoverSetup{primary: &stubLimiter{}, clock: newFakeClock(), logs: &bytes.Buffer{}}
	var mu sync.Mutex
	s.l = NewFailover(s.primary, p, &FailoverOptions{
		Logger:   slog.New(slog.NewTextHandler(s.logs, nil)),
		OnError:  func(err error) { mu.Lock(); s.errs = append(s.errs, err); mu.Unlock() },
		Cooldown: 2 * time.Second,
		Fallback: fallback,
		Now:      s.clock.Now,
	})
	return s
}

func TestFailoverPassesThroughWhenHealthy(t *testing.T) {
	t.Parallel()
	for _, p := range []Policy{FailOpen, FailClosed} {
		s := setupFailover(t, p, nil)
		d, err := s.l.Allow(context.Background(), "k", Limit{PerMinute: 10})
		if err != nil || d.Allowed || d.RetryAfter != time.Second {
			t.Fatalf("%v: healthy primary's refusal not passed through: %+v, %v", p, d, err)
		}
		if len(s.errs) != 0 || s.logs.Len() != 0 {
			t.Fatalf("%v: OnError/log on a healthy primary: %v %q", p, s.errs, s.logs)
		}
	}
}

func TestFailoverFailOpen(t *testing.T) {
	t.Parallel()
	s := setupFailover(t, FailOpen, nil)
	ctx := context.Background()
	lim := Limit{PerMinute: 60, Burst: 4}
	s.primary.set(errDown)

	d, err := s.l.Allow(ctx, "k", lim)
	if err != nil || !d.Allowed {
		t.Fatalf("FailOpen with failing primary: %+v, %v; want allowed", d, err)
	}
	if d.Limit != (Limit{60, 4}) || d.Remaining != 4 {
		t.Fatalf("fail-open decision = %+v, want the limit and a full budget", d)
	}
	// During the cooldown the primary is not asked at all.
	for range 3 {
		s.clock.Advance(500 * time.Millisecond)
		if d, err := s.l.Allow(ctx, "k", lim); err != nil || !d.Allowed {
			t.Fatalf("FailOpen during cooldown: %+v, %v", d, err)
		}
	}
	if n := s.primary.count(); n != 1 {
		t.Fatalf("primary called %d times during the cooldown, want 1", n)
	}
	if len(s.errs) != 4 || !errors.Is(s.errs[0], errDown) || !errors.Is(s.errs[1], ErrUnavailable) {
		t.Fatalf("OnError got %v; want the primary's error, then ErrUnavailable for skipped checks", s.errs)
	}
	if c := strings.Count(s.logs.String(), "level=WARN"); c != 1 {
		t.Fatalf("%d warnings logged, want 1:\n%s", c, s.logs)
	}
	// Cooldown over, primary still down: one probe, which fails; no new
	// warning within ten seconds.
	s.clock.Advance(time.Second)
	s.l.Allow(ctx, "k", lim)
	if n := s.primary.count(); n != 2 {
		t.Fatalf("primary called %d times after the cooldown, want 2", n)
	}
	if c := strings.Count(s.logs.String(), "level=WARN"); c != 1 {
		t.Fatalf("%d warnings logged within 10s, want 1:\n%s", c, s.logs)
	}
	// Primary back: the next probe uses it and it stays in use.
	s.primary.set(nil)
	s.clock.Advance(2 * time.Second)
	for range 3 {
		if d, _ := s.l.Allow(ctx, "k", lim); d.Allowed {
			t.Fatal("decision after recovery did not come from the primary")
		}
	}
	if n := s.primary.count(); n != 5 {
		t.Fatalf("primary called %d times, want 5", n)
	}
	if !strings.Contains(s.logs.String(), "recovered") {
		t.Fatalf("no recovery logged:\n%s", s.logs)
	}
}

func TestFailoverFailClosed(t *testing.T) {
	t.Parallel()
	s := setupFailover(t, FailClosed, &stubLimiter{}) // fallback ignored when closed
	ctx := context.Background()
	s.primary.set(errDown)
	_, err := s.l.Allow(ctx, "k", Limit{PerMinute: 60})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errDown) {
		t.Fatalf("FailClosed error = %v, want ErrUnavailable wrapping the cause", err)
	}
	_, err = s.l.Allow(ctx, "k", Limit{PerMinute: 60})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("FailClosed during cooldown: err = %v, want ErrUnavailable", err)
	}
	if s.primary.count() != 1 || len(s.errs) != 2 {
		t.Fatalf("primary calls %d, OnError calls %d; want 1 and 2", s.primary.count(), len(s.errs))
	}
	// An error that already says ErrUnavailable is not wrapped twice.
	s.clock.Advance(3 * time.Second)
	s.primary.set(errors.Join(ErrUnavailable, errDown))
	_, err = s.l.Allow(ctx, "k", Limit{PerMinute: 60})
	if strings.Count(err.Error(), "unavailable") != 1 {
		t.Fatalf("error wrapped twice: %v", err)
	}
}

func TestFailoverFallback(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	mem := newTestMemory(t, clock.Now)
	s := setupFailover(t, FailOpen, mem)
	s.primary.set(errDown)
	lim := Limit{PerMinute: 60, Burst: 2}
	mustAllow(t, s.l, "k", lim, true)
	mustAllow(t, s.l, "k", lim, true)
	mustAllow(t, s.l, "k", lim, false) // the fallback's per-replica budget bites
}

func TestFailoverCallerCancellationIsNotAnOutage(t *testing.T) {
	t.Parallel()
	s := setupFailover(t, FailClosed, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.primary.set(context.Canceled)
	if _, err := s.l.Allow(ctx, "k", Limit{PerMinute: 1}); !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want context.Canceled only", err)
	}
	s.primary.set(nil)
	s.l.Allow(context.Background(), "k", Limit{PerMinute: 1})
	if s.primary.count() != 2 || len(s.errs) != 0 {
		t.Fatalf("a cancelled caller tripped the breaker (primary calls %d, OnError %d)", s.primary.count(), len(s.errs))
	}
	if _, err := s.l.Allow(context.Background(), "", Limit{PerMinute: 1}); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("empty key: err = %v, want ErrInvalidKey", err)
	}
}

func TestPolicyString(t *testing.T) {
	t.Parallel()
	for p, want := range map[Policy]string{FailOpen: "fail-open", FailClosed: "fail-closed", 7: "Policy(7)"} {
		if got := p.String(); got != want {
			t.Errorf("Policy(%d).String() = %q, want %q", int(p), got, want)
		}
	}
}
