package auth

import "time"

// SetRefreshClock makes the Verifier built from o schedule its JWK Set
// re-fetches on a fake clock: now reads it, at returns a channel that
// receives once it reaches t.
func SetRefreshClock(o *Options, now func() time.Time, at func(t time.Time) <-chan time.Time) {
	o.refreshClock = funcClock{now, at}
}

type funcClock struct {
	nowFn func() time.Time
	atFn  func(time.Time) <-chan time.Time
}

func (c funcClock) now() time.Time                  { return c.nowFn() }
func (c funcClock) at(t time.Time) <-chan time.Time { return c.atFn(t) }
