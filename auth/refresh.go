package auth

import (
	"context"
	"errors"
	"sync"
	"time"
)

// refresher re-fetches the JWK Set for tokens whose kid is not loaded. Fetch
// starts are at least every apart, whoever asks (so forged kids cost the IdP
// at most one request per interval), and a token is answered by a fetch that
// starts after it arrived: the next one allowed, shared by every token
// waiting for it. A forged kid therefore never uses up a window that a
// genuinely rotated key then has to wait out: the rotated key is loaded by
// the next fetch, at most every after the previous one.
type refresher struct {
	every   time.Duration // least time between the starts of two fetches
	maxWait time.Duration // longest a token waits for the next fetch to start
	fetch   func()        // one fetch; bounds its own duration
	clock   refreshClock
	stop    <-chan struct{} // closed by Verifier.Close

	mu      sync.Mutex
	next    time.Time     // earliest start of the next fetch
	pending *pendingFetch // scheduled or running; nil = none
}

type pendingFetch struct {
	started bool          // the request has gone out (guarded by refresher.mu)
	done    chan struct{} // closed when the fetch has ended (or was abandoned)
}

// refreshClock is the refresher's time: real by default, a fake in tests.
type refreshClock interface {
	now() time.Time
	// at returns a channel that receives once the clock reaches t.
	at(t time.Time) <-chan time.Time
}

type realClock struct{}

func (realClock) now() time.Time                  { return time.Now() }
func (realClock) at(t time.Time) <-chan time.Time { return time.After(time.Until(t)) }

// errRefreshLimited: the next fetch allowed is further away than maxWait.
var errRefreshLimited = errors.New("auth: JWK Set re-fetch rate-limited")

// errRefreshStopped: the verifier is closed, no more fetches.
var errRefreshStopped = errors.New("auth: verifier closed")

// await returns once a fetch that started after it was called has ended, so
// the caller can look its kid up again; nil also when loaded reports the
// kid has appeared meanwhile. It returns errRefreshLimited at once when the
// next fetch allowed starts more than maxWait from now, errRefreshStopped
// after Close, and ctx's error if ctx ends first.
func (r *refresher) await(ctx context.Context, loaded func() bool) error {
	for {
		r.mu.Lock()
		select {
		case <-r.stop:
			r.mu.Unlock()
			return errRefreshStopped
		default:
		}
		f := r.pending
		if f == nil {
			now := r.clock.now()
			start := now
			if r.next.After(now) {
				// A fetch started recently; it may have loaded the kid
				// since the caller looked.
				if loaded() {
					r.mu.Unlock()
					return nil
				}
				if r.next.Sub(now) > r.maxWait {
					r.mu.Unlock()
					return errRefreshLimited
				}
				start = r.next
			}
			f = &pendingFetch{done: make(chan struct{})}
			r.pending = f
			r.next = start.Add(r.every)
			go r.run(f, start)
		}
		// A fetch already under way may have gone out before the key this
		// token needs was published: after it, wait for the next one.
		early := f.started
		r.mu.Unlock()
		select {
		case <-f.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if !early || loaded() {
			return nil
		}
	}
}

// run performs f at start, or abandons it when the verifier is closed.
func (r *refresher) run(f *pendingFetch, start time.Time) {
	defer close(f.done)
	if start.After(r.clock.now()) {
		select {
		case <-r.clock.at(start):
		case <-r.stop:
			r.finish(f)
			return
		}
	}
	r.mu.Lock()
	f.started = true
	r.mu.Unlock()
	r.fetch()
	r.finish(f)
}

func (r *refresher) finish(f *pendingFetch) {
	r.mu.Lock()
	if r.pending == f {
		r.pending = nil
	}
	r.mu.Unlock()
}
