package registrytest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
)

// ReportWithin is how long the watcher tests wait for a change to be
// reported before they fail. Watchers aim at well under a second; the
// margin is for loaded test machines, and the tests log what they saw.
const ReportWithin = 5 * time.Second

// LongIssuer is a valid issuer longer than a PostgreSQL NOTIFY payload
// may be (and compressible, so that PostgreSQL can index it).
var LongIssuer = "https://idp.example.com/" + strings.Repeat("long/", 1800)

// Changes collects what a Watcher reports; see Watch.
type Changes struct {
	ch       chan registry.Change
	overflow atomic.Bool
}

// Watch runs w.Watch until the test ends, then checks that it returned
// nil promptly.
func Watch(t testing.TB, w registry.Watcher) *Changes {
	t.Helper()
	c := &Changes{ch: make(chan registry.Change, 4096)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(ctx, func(ch registry.Change) {
			select {
			case c.ch <- ch:
			default:
				c.overflow.Store(true)
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Watch returned %v after its context ended, want nil", err)
			}
		case <-time.After(ReportWithin):
			t.Errorf("Watch did not return within %v of its context ending", ReportWithin)
		}
		if c.overflow.Load() {
			t.Error("more changes reported than the test could hold")
		}
	})
	return c
}

// Next returns the next change reported, failing the test if none comes
// within ReportWithin.
func (c *Changes) Next(t testing.TB) registry.Change {
	t.Helper()
	select {
	case ch := <-c.ch:
		return ch
	case <-time.After(ReportWithin):
		t.Fatalf("no change reported within %v", ReportWithin)
		return registry.Change{}
	}
}

// Ready waits for the Change{All: true} a watcher reports once it is
// watching; changes committed after it returns are reported.
func (c *Changes) Ready(t testing.TB) {
	t.Helper()
	for !c.Next(t).All {
	}
}

// Expect waits for the next change that names a tenant (skipping
// Change{All: true}, which a watcher may report at any time) and checks
// that it names want: its ID, and its key exactly or not at all.
func (c *Changes) Expect(t testing.TB, want *registry.Tenant) {
	t.Helper()
	start := time.Now()
	for {
		got := c.Next(t)
		if got.All {
			continue
		}
		switch {
		case got.ID != want.ID:
			t.Fatalf("change reported for %s (%q), want %s (%q): a failed or foreign write was reported, or one was missed",
				got.ID, got.ExternalID, want.ID, want.ExternalID)
		case (got.Issuer != "" || got.ExternalID != "") && (got.Issuer != want.Issuer || got.ExternalID != want.ExternalID):
			t.Fatalf("change of %s names key (%.40q, %q), want (%.40q, %q)", got.ID, got.Issuer, got.ExternalID, want.Issuer, want.ExternalID)
		}
		if tt, ok := t.(*testing.T); ok {
			tt.Logf("change of %s reported %v after Expect was called", want.ID, time.Since(start).Round(100*time.Microsecond))
		}
		return
	}
}

// ExpectCreate creates a record for externalID (under a fixed issuer)
// through s and waits for its change to be reported.
func (c *Changes) ExpectCreate(t testing.TB, s registry.Store, externalID string) *registry.Tenant {
	t.Helper()
	rec := Record("https://idp.example.com/", externalID)
	if err := s.Create(context.Background(), rec); err != nil {
		t.Fatalf("Create %q: %v", externalID, err)
	}
	c.Expect(t, rec)
	return rec
}

// RunWatcher runs the contract suite of registry.Watcher. newPair must
// return two handles on one fresh, empty database for each subtest (and
// arrange for their cleanup): watched, which must implement
// registry.Watcher, and other, through which the suite writes as another
// process or replica would.
func RunWatcher(t *testing.T, newPair func(t *testing.T) (watched, other registry.Store)) {
	ctx := context.Background()
	watcher := func(t *testing.T, s registry.Store) registry.Watcher {
		t.Helper()
		w, ok := s.(registry.Watcher)
		if !ok {
			t.Fatalf("%T does not implement registry.Watcher", s)
		}
		return w
	}

	// Each committed write is reported once, in order; refused writes
	// report nothing (else the next expected change would not come next).
	t.Run("ReportsEachWrite", func(t *testing.T) {
		watched, other := newPair(t)
		c := Watch(t, watcher(t, watched))
		c.Ready(t)
		a := Record(issuerA, "org_watch")
		if err := other.Create(ctx, a); err != nil {
			t.Fatal(err)
		}
		c.Expect(t, a)
		if err := other.Create(ctx, Record(issuerA, "org_watch")); !errors.Is(err, registry.ErrExists) {
			t.Fatalf("duplicate Create: %v", err)
		}
		ghost := Record(issuerA, "org_ghost")
		if err := other.Update(ctx, ghost); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Update of an unknown id: %v", err)
		}
		if err := other.Delete(ctx, ghost.ID); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("Delete of an unknown id: %v", err)
		}
		upd := a.Clone()
		upd.Status = registry.StatusSuspended
		if err := other.Update(ctx, upd); err != nil {
			t.Fatal(err)
		}
		c.Expect(t, a)
		b := Record(issuerB, "org_watch")
		if err := other.Create(ctx, b); err != nil {
			t.Fatal(err)
		}
		c.Expect(t, b)
		if err := other.Delete(ctx, a.ID); err != nil {
			t.Fatal(err)
		}
		c.Expect(t, a)
		// The watched handle's own writes may be reported too; either
		// way they do not stop the others' from being reported.
		if err := watched.Delete(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		last := Record(issuerA, "org_last")
		if err := other.Create(ctx, last); err != nil {
			t.Fatal(err)
		}
		for {
			got := c.Next(t)
			if got.ID == last.ID {
				break
			}
			if !got.All && got.ID != b.ID {
				t.Fatalf("change reported for %s, want %s (or %s, the watched handle's own)", got.ID, last.ID, b.ID)
			}
		}
	})

	// Keys that naive encodings confuse, and an issuer too long to be
	// sent whole, are reported exactly (or by ID alone).
	t.Run("HostileKeys", func(t *testing.T) {
		watched, other := newPair(t)
		c := Watch(t, watcher(t, watched))
		c.Ready(t)
		var recs []*registry.Tenant
		for _, ext := range slices.Concat(HostileExternalIDs, []string{`{"id":"x"}`, `\u0000`}) {
			r := Record(issuerA, ext)
			if err := other.Create(ctx, r); err != nil {
				t.Fatalf("Create %q: %v", ext, err)
			}
			recs = append(recs, r)
		}
		long := Record(LongIssuer, "org_long")
		if err := other.Create(ctx, long); err != nil {
			t.Fatalf("Create under a %d-byte issuer: %v", len(LongIssuer), err)
		}
		if err := other.Delete(ctx, long.ID); err != nil {
			t.Fatal(err)
		}
		for _, r := range append(recs, long, long) {
			c.Expect(t, r)
		}
	})

	// Through a Registry: a tenant added, suspended and deleted elsewhere
	// is seen by Resolve although the cache would hold the old answer for
	// an hour.
	t.Run("Registry", func(t *testing.T) {
		watched, other := newPair(t)
		reg := registry.New(watched, &registry.Options{TTL: time.Hour, NegativeTTL: time.Hour})
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- reg.Watch(wctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Registry.Watch: %v", err)
			}
		}()
		if _, err := reg.Resolve(ctx, issuerA, "org_elsewhere"); !errors.Is(err, registry.ErrUnknownTenant) {
			t.Fatalf("before Create: %v", err)
		}
		rec := Record(issuerA, "org_elsewhere")
		rec.Status, rec.TrialEndsAt = registry.StatusActive, time.Time{}
		if err := other.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		Eventually(t, "the tenant added elsewhere is resolved", func() bool {
			got, err := reg.Resolve(ctx, issuerA, "org_elsewhere")
			return err == nil && got.ID == rec.ID
		})
		upd := rec.Clone()
		upd.Status = registry.StatusSuspended
		if err := other.Update(ctx, upd); err != nil {
			t.Fatal(err)
		}
		Eventually(t, "the tenant suspended elsewhere is refused", func() bool {
			_, err := reg.Resolve(ctx, issuerA, "org_elsewhere")
			return errors.Is(err, registry.ErrSuspended)
		})
		if err := other.Delete(ctx, rec.ID); err != nil {
			t.Fatal(err)
		}
		Eventually(t, "the tenant deleted elsewhere is unknown", func() bool {
			_, err := reg.Resolve(ctx, issuerA, "org_elsewhere")
			return errors.Is(err, registry.ErrUnknownTenant)
		})
	})
}

// Eventually polls cond until it holds, failing the test with what if it
// does not within ReportWithin; it logs how long it took.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > ReportWithin {
			t.Fatalf("%s: not within %v", what, ReportWithin)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
}

// BenchWatcher measures how long a change made through other takes to be
// reported by watched's Watcher: the delay before every replica drops a
// stale record.
func BenchWatcher(b *testing.B, watched, other registry.Store) {
	w, ok := watched.(registry.Watcher)
	if !ok {
		b.Fatalf("%T does not implement registry.Watcher", watched)
	}
	ctx := context.Background()
	c := Watch(b, w)
	c.Ready(b)
	rec := Record(issuerA, "org_bench")
	if err := other.Create(ctx, rec); err != nil {
		b.Fatal(err)
	}
	c.Expect(b, rec)
	for b.Loop() {
		rec.UpdatedAt = rec.UpdatedAt.Add(time.Microsecond)
		if err := other.Update(ctx, rec); err != nil {
			b.Fatal(err)
		}
		c.Expect(b, rec)
	}
}
