package auth_test

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/internal/idptest"
)

// fakeTime is a clock that moves only when the test advances it, for the
// verifier's JWK Set re-fetch schedule (auth.SetRefreshClock).
type fakeTime struct {
	mu      sync.Mutex
	t       time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeTime() *fakeTime { return &fakeTime{t: time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)} }

func (f *fakeTime) now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeTime) at(t time.Time) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(f.t) {
		ch <- f.t
	} else {
		f.waiters = append(f.waiters, fakeWaiter{t, ch})
	}
	return ch
}

func (f *fakeTime) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.t = f.t.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.t) {
			kept = append(kept, w)
		} else {
			w.ch <- f.t
		}
	}
	f.waiters = kept
}

// TestForgedKidsDoNotDelayRotation: tokens with made-up kids arrive
// without pause; each unknown kid may ask for a JWK Set re-fetch. Across a
// (fake) minute with the default RefreshRateLimit the IdP sees at most six
// re-fetches, and after it rotates its keys a token signed with the new
// key is accepted within 10 seconds: the forged kids never spend a window
// the genuine one then has to wait out.
func TestForgedKidsDoNotDelayRotation(t *testing.T) {
	t.Parallel()
	clk := newFakeTime()
	b := setup(t, func(_ *idptest.IdP, o *auth.Options) {
		o.CacheSize = -1 // every genuine Verify looks its key up
		auth.SetRefreshClock(o, clk.now, clk.at)
	})
	idp := b.idp
	start := idp.JWKSFetches() // NewVerifier's own fetch

	forged := make([]string, 8)
	for i := range forged {
		forged[i] = idp.ForgedKid(fmt.Sprintf("forged-%d", i), b.auth0("org_1"))
	}
	stop := make(chan struct{})
	var flood sync.WaitGroup
	var sent atomic.Int64
	var floodErr atomic.Value
	for w := range 4 {
		flood.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, err := b.v.Verify(b.ctx, forged[i%len(forged)])
				if err == nil || !strings.HasPrefix(err.Error(), "unknown signing key id") {
					floodErr.CompareAndSwap(nil, fmt.Sprint(err))
				}
				sent.Add(1)
			}
		})
	}
	var once sync.Once
	stopFlood := func() {
		once.Do(func() {
			close(stop)
			b.v.Close() // releases the forged tokens waiting for a re-fetch
			flood.Wait()
		})
	}
	defer stopFlood()

	// The flood has reached the verifier: its first forged kid re-fetched.
	for deadline := time.Now().Add(30 * time.Second); idp.JWKSFetches() == start; {
		if time.Now().After(deadline) {
			t.Fatal("no forged kid triggered a JWKS fetch")
		}
		time.Sleep(time.Millisecond)
	}
	// step moves the fake clock on by a second and lets the flood (and the
	// fetches it triggers) run a moment.
	step := func() {
		clk.advance(time.Second)
		time.Sleep(time.Millisecond)
	}
	for range 25 {
		step()
	}
	idp.Rotate()
	genuine := idp.Sign(b.auth0("org_1"))
	result := make(chan error, 1)
	go func() {
		_, err := b.v.Verify(b.ctx, genuine)
		result <- err
	}()
	for range 10 {
		step()
	}
	// The clock now stands 10s after the rotation: the genuine token must
	// be answered without it moving further. (The timeout only turns a
	// hang into a failure; it is no bound on the code.)
	select {
	case err := <-result:
		if err != nil {
			t.Fatalf("token signed with the rotated key, 10s after the rotation under a flood of forged kids: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("token signed with the rotated key was not answered while the clock stood 10s after the rotation")
	}
	for range 24 { // to 59s after the first forged kid
		step()
	}
	fetches := idp.JWKSFetches() - start
	stopFlood()
	if msg := floodErr.Load(); msg != nil {
		t.Errorf("a forged kid was not refused as an unknown signing key: %v", msg)
	}
	if fetches > 6 {
		t.Errorf("%d forged kids in one minute caused %d JWKS fetches, want at most 6", sent.Load(), fetches)
	}
	if fetches < 2 {
		t.Errorf("only %d JWKS fetches: the flood did not reach the verifier", fetches)
	}
}
