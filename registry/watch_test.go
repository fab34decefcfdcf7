package registry_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// fakeWatcher is a store whose Watch reports what the test sends, and
// whose GetByID can fail.
type fakeWatcher struct {
	*countingStore
	changes chan registry.Change

	mu       sync.Mutex
	failByID error
}

func (f *fakeWatcher) Watch(ctx context.Context, changed func(registry.Change)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case c := <-f.changes:
			changed(c)
		}
	}
}

func (f *fakeWatcher) GetByID(ctx context.Context, id tenant.ID) (*registry.Tenant, error) {
	f.mu.Lock()
	err := f.failByID
	f.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return f.countingStore.GetByID(ctx, id)
}

type watchEnv struct {
	*env
	fw *fakeWatcher
}

// watchSetup is setup with a store that is a Watcher (TTLs of an hour, so
// only a change drops an entry) and Registry.Watch running until the
// test ends.
func watchSetup(t *testing.T) *watchEnv {
	t.Helper()
	e := setup(t, nil)
	fw := &fakeWatcher{countingStore: e.store, changes: make(chan registry.Change)}
	e.reg = registry.New(fw, &registry.Options{TTL: time.Hour, NegativeTTL: time.Hour, Now: e.clock.Now})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.reg.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
	})
	return &watchEnv{env: e, fw: fw}
}

// send reports c and returns once the Registry has handled it: Watch
// reports one change at a time, so it has when it takes the next (an
// empty Change, which drops nothing).
func (w *watchEnv) send(t *testing.T, c registry.Change) {
	t.Helper()
	for _, c := range []registry.Change{c, {}} {
		select {
		case w.fw.changes <- c:
		case <-time.After(registrytest.ReportWithin):
			t.Fatal("Registry.Watch does not take the store's changes")
		}
	}
}

func (w *watchEnv) resolve(ext string) error {
	_, err := w.reg.Resolve(context.Background(), iss, ext)
	return err
}

// behind changes or creates records in the store behind the Registry's
// back, as another process would: org_a and org_b suspended, org_new
// added.
func (w *watchEnv) behind(t *testing.T, a, b *registry.Tenant) *registry.Tenant {
	t.Helper()
	for _, r := range []*registry.Tenant{a, b} {
		w.direct(t, r.ID, func(r *registry.Tenant) { r.Status = registry.StatusSuspended })
	}
	now := w.clock.Now()
	added := &registry.Tenant{ID: tenant.NewID(), Issuer: iss, ExternalID: "org_new", Status: registry.StatusActive, CreatedAt: now, UpdatedAt: now}
	if err := w.mem.Create(context.Background(), added); err != nil {
		t.Fatal(err)
	}
	return added
}

// cached resolves org_a and org_b (active) and org_new (not registered),
// so that all three are cached.
func (w *watchEnv) cached(t *testing.T) (a, b *registry.Tenant) {
	t.Helper()
	a, b = w.add(t, "org_a", nil), w.add(t, "org_b", nil)
	if w.resolve("org_a") != nil || w.resolve("org_b") != nil || !errors.Is(w.resolve("org_new"), registry.ErrUnknownTenant) {
		t.Fatal("resolving before the changes failed")
	}
	return a, b
}

// A change reported by key drops that key's entry only, a record or a
// "not registered" answer.
func TestWatchDropsChangedKey(t *testing.T) {
	t.Parallel()
	w := watchSetup(t)
	a, b := w.cached(t)
	added := w.behind(t, a, b)
	w.send(t, registry.Change{ID: a.ID, Issuer: iss, ExternalID: "org_a"})
	w.send(t, registry.Change{ID: added.ID, Issuer: iss, ExternalID: "org_new"})
	if err := w.resolve("org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("org_a after its change: %v, want ErrSuspended", err)
	}
	if err := w.resolve("org_new"); err != nil {
		t.Errorf("org_new after it was added elsewhere: %v, want it served", err)
	}
	if err := w.resolve("org_b"); err != nil {
		t.Errorf("org_b (no change reported): %v, want the cached record", err)
	}
}

// A change that names only an ID drops the record with that ID, and the
// key the store now has for it (a tenant just added); a deleted tenant is
// found by its ID in the cache.
func TestWatchDropsChangedID(t *testing.T) {
	t.Parallel()
	w := watchSetup(t)
	a, b := w.cached(t)
	added := w.behind(t, a, b)
	if err := w.mem.Delete(context.Background(), b.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []tenant.ID{a.ID, b.ID, added.ID} {
		w.send(t, registry.Change{ID: id})
	}
	if err := w.resolve("org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("org_a (updated): %v, want ErrSuspended", err)
	}
	if err := w.resolve("org_b"); !errors.Is(err, registry.ErrUnknownTenant) {
		t.Errorf("org_b (deleted): %v, want ErrUnknownTenant", err)
	}
	if err := w.resolve("org_new"); err != nil {
		t.Errorf("org_new (added): %v, want it served", err)
	}
}

// Change{All: true} drops everything; so does an ID-only change whose key
// the store cannot tell.
func TestWatchDropsAll(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(a *registry.Tenant) registry.Change
		fail   error
	}{
		{"All", func(*registry.Tenant) registry.Change { return registry.Change{All: true} }, nil},
		{"IDLookupFails", func(a *registry.Tenant) registry.Change { return registry.Change{ID: a.ID} }, errors.New("database down")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := watchSetup(t)
			a, b := w.cached(t)
			w.behind(t, a, b)
			w.fw.mu.Lock()
			w.fw.failByID = c.fail
			w.fw.mu.Unlock()
			w.send(t, c.change(a))
			if n := w.reg.Stats().Entries; n != 0 {
				t.Errorf("%d entries cached after the change, want none", n)
			}
			if err := w.resolve("org_b"); !errors.Is(err, registry.ErrSuspended) {
				t.Errorf("org_b: %v, want ErrSuspended", err)
			}
			if err := w.resolve("org_new"); err != nil {
				t.Errorf("org_new: %v, want it served", err)
			}
		})
	}
}

// A change reported while a lookup of that tenant is in flight: the
// lookup's older answer is not cached.
func TestWatchDuringLookupInFlight(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name   string
		change func(a *registry.Tenant) registry.Change
	}{
		{"Key", func(a *registry.Tenant) registry.Change {
			return registry.Change{ID: a.ID, Issuer: iss, ExternalID: "org_a"}
		}},
		{"ID", func(a *registry.Tenant) registry.Change { return registry.Change{ID: a.ID} }},
		{"All", func(*registry.Tenant) registry.Change { return registry.Change{All: true} }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := watchSetup(t)
			a := w.add(t, "org_a", nil)
			release := w.store.hold()
			done := make(chan error, 1)
			go func() { done <- w.resolve("org_a") }() // reads "active", then waits
			for w.store.gets.Load() == 0 {
				time.Sleep(time.Millisecond)
			}
			w.direct(t, a.ID, func(r *registry.Tenant) { r.Status = registry.StatusSuspended })
			w.send(t, c.change(a))
			release()
			if err := <-done; err != nil {
				t.Fatalf("in-flight Resolve: %v (it read the record before the change)", err)
			}
			if err := w.resolve("org_a"); !errors.Is(err, registry.ErrSuspended) {
				t.Errorf("after the change: %v, want ErrSuspended (the stale lookup must not be cached)", err)
			}
		})
	}
}

// Change{All: true} while Refresh reads the store: its snapshot, perhaps
// older than the change, is not installed.
func TestWatchDuringRefresh(t *testing.T) {
	t.Parallel()
	w := watchSetup(t)
	a := w.add(t, "org_a", nil)
	release := w.store.holdList()
	done := make(chan error, 1)
	go func() {
		_, err := w.reg.Refresh(context.Background())
		done <- err
	}()
	for !w.store.listing.Load() {
		time.Sleep(time.Millisecond)
	}
	w.direct(t, a.ID, func(r *registry.Tenant) { r.Status = registry.StatusSuspended })
	w.send(t, registry.Change{All: true})
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := w.resolve("org_a"); !errors.Is(err, registry.ErrSuspended) {
		t.Errorf("after Refresh: %v, want ErrSuspended (its older snapshot must not be installed)", err)
	}
}

// A store that cannot watch: Watch returns at once.
func TestWatchWithoutWatcher(t *testing.T) {
	t.Parallel()
	reg := registry.New(registry.NewMemoryStore(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := reg.Watch(ctx); err != nil || ctx.Err() != nil {
		t.Fatalf("Watch = %v (context: %v), want nil at once", err, ctx.Err())
	}
}
