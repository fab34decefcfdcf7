package lifecycle_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// heldBackend is a memBackend whose Export waits, once armed, until it is
// released or its context ends, as a long export would.
type heldBackend struct {
	*memBackend
	mu      sync.Mutex
	entered chan struct{} // closed when an armed Export starts waiting
	release chan struct{}
}

// arm makes the next Export wait.
func (b *heldBackend) arm() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entered, b.release = make(chan struct{}), make(chan struct{})
}

func (b *heldBackend) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	b.mu.Lock()
	entered, release := b.entered, b.release
	b.entered = nil
	b.mu.Unlock()
	if entered != nil {
		close(entered)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return b.memBackend.Export(ctx, id, w)
}

type leaseFixture struct {
	store *registry.MemoryStore
	reg   *registry.Registry
	data  *heldBackend
	clock *testenv.Clock
	m     *lifecycle.Manager
}

// leaseSetup is a Manager with one held backend, a settable clock and
// leases of ttl (0 = the default).
func leaseSetup(t *testing.T, ttl time.Duration) *leaseFixture {
	t.Helper()
	f := &leaseFixture{store: registry.NewMemoryStore(), data: &heldBackend{memBackend: newMemBackend()},
		clock: testenv.NewClock(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))}
	f.reg = registry.New(f.store, &registry.Options{Now: f.clock.Now})
	archives, err := archive.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archives.Close() })
	f.m, err = lifecycle.New(lifecycle.Options{
		Registry: f.reg,
		Backends: []lifecycle.Backend{{Name: "sql", Provision: f.data.Provision, Data: f.data}},
		Archives: archives, Strategy: "test", TempDir: t.TempDir(), Now: f.clock.Now, LeaseTTL: ttl,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// archiveHeld starts an archive of id that waits in its write step, and
// returns its error channel once it waits there, and the release of the
// wait.
func (f *leaseFixture) archiveHeld(t *testing.T, ctx context.Context, id tenant.ID) (<-chan error, func()) {
	t.Helper()
	f.data.arm()
	f.data.mu.Lock()
	entered, release := f.data.entered, f.data.release
	f.data.mu.Unlock()
	done := make(chan error, 1)
	go func() {
		_, err := f.m.Archive(ctx, admin, id)
		done <- err
		close(done) // for the cleanup's wait, once the test has the error
	}()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(func() {
		free()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the held archive did not end")
		}
	})
	select {
	case <-entered:
	case err := <-done:
		t.Fatalf("the archive ended before its write step waited: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the archive did not reach its write step")
	}
	return done, free
}

func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the operation did not end")
		return nil
	}
}

func (f *leaseFixture) provision(t *testing.T, ext string) *registry.Tenant {
	t.Helper()
	tn, err := f.m.Provision(t.Context(), admin, registry.Tenant{Issuer: "https://idp/", ExternalID: ext})
	if err != nil {
		t.Fatalf("provision %s: %v", ext, err)
	}
	return tn
}

// An operation that loses its lease — taken over by another holder, or
// not renewed before it ended — stops with ErrLeaseLost, leaving the
// tenant at a step from which running it again finishes it.
func TestLeaseLostStopsTheOperation(t *testing.T) {
	for _, how := range []string{"taken over", "expired"} {
		t.Run(how, func(t *testing.T) {
			f := leaseSetup(t, 60*time.Millisecond) // renewed every 20ms
			a := f.provision(t, "acme")
			done, _ := f.archiveHeld(t, context.Background(), a.ID)
			var want string
			switch how {
			case "taken over":
				// A holder whose clock is well past the lease's end takes it.
				later := f.clock.Now().Add(time.Hour)
				taker := registry.Lease{Issuer: a.Issuer, ExternalID: a.ExternalID, Tenant: a.ID, Operation: "purge",
					Holder: "other", Token: "taker", AcquiredAt: later, ExpiresAt: later.Add(time.Minute)}
				if err := f.store.AcquireLease(t.Context(), taker); err != nil {
					t.Fatalf("take over the lease: %v", err)
				}
				want = "another operation took the tenant over"
			case "expired":
				f.clock.Advance(time.Hour) // a stalled process, as its own clock sees it
				want = "without being renewed"
			}
			err := result(t, done)
			if !errors.Is(err, lifecycle.ErrLeaseLost) || !strings.Contains(err.Error(), want) {
				t.Fatalf("the archive after losing its lease: %v; want ErrLeaseLost saying %q", err, want)
			}
			half, err := f.reg.Get(t.Context(), a.ID)
			if err != nil || half.Lifecycle.Operation != lifecycle.OpArchive || half.Status != registry.StatusSuspended {
				t.Fatalf("the tenant after the stopped archive: %+v, %v; want it suspended in its archive", half, err)
			}
			if how == "taken over" {
				if err := f.store.ReleaseLease(t.Context(), a.Issuer, a.ExternalID, "taker"); err != nil {
					t.Fatal(err)
				}
			}
			done2, err := f.m.Archive(t.Context(), admin, a.ID)
			if err != nil || done2.Status != registry.StatusArchived {
				t.Fatalf("running the archive again: %+v, %v", done2, err)
			}
		})
	}
}

// An operation whose context ends releases the tenant at once: the next
// one does not wait for the lease to expire.
func TestCanceledOperationReleasesTheTenant(t *testing.T) {
	f := leaseSetup(t, time.Hour)
	a := f.provision(t, "acme")
	ctx, cancel := context.WithCancel(context.Background())
	done, _ := f.archiveHeld(t, ctx, a.ID)
	cancel()
	if err := result(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("the canceled archive: %v, want context.Canceled", err)
	}
	if tn, err := f.m.Archive(t.Context(), admin, a.ID); err != nil || tn.Status != registry.StatusArchived {
		t.Fatalf("the archive after a canceled one: %+v, %v", tn, err)
	}
}

// The background job leaves an operation that is running alone, however
// long it has been idle, and a tenant due to be purged while another
// operation holds it; other tenants are not held up.
func TestJobsLeaveBusyTenantsAlone(t *testing.T) {
	f := leaseSetup(t, 0)
	ctx := t.Context()
	a, b, c := f.provision(t, "acme"), f.provision(t, "globex"), f.provision(t, "initech")
	f.data.put(a.ID, "rows", "acme rows")
	for _, id := range []tenant.ID{b.ID, c.ID} {
		if _, err := f.m.Archive(ctx, admin, id); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(f.m.Retention() + time.Hour) // b and c are due
	done, free := f.archiveHeld(t, context.Background(), a.ID)
	// Idle 0: the job would finish any operation in progress, but the
	// lease says that this one is running.
	if n, err := f.m.Reconcile(ctx, lifecycle.System, 0); n != 0 || err != nil {
		t.Errorf("Reconcile while the archive runs: finished %d, %v; want 0, nil", n, err)
	}
	// Another operation on c (an export, that holds it without changing
	// it) keeps PurgeDue off c, not off b.
	exporting := make(chan error, 1)
	f.data.arm()
	f.data.mu.Lock()
	entered, releaseExport := f.data.entered, f.data.release
	f.data.mu.Unlock()
	go func() { exporting <- f.m.Export(context.Background(), admin, c.ID, &strings.Builder{}) }()
	<-entered
	if n, err := f.m.PurgeDue(ctx, lifecycle.System); n != 1 || err != nil {
		t.Errorf("PurgeDue while c is exported: purged %d, %v; want 1 (b), nil", n, err)
	}
	if got, _ := f.reg.Get(ctx, c.ID); got.Status != registry.StatusArchived {
		t.Errorf("c was purged while it was exported: %+v", got)
	}
	if got, _ := f.reg.Get(ctx, b.ID); got.Status != registry.StatusPurged {
		t.Errorf("b was not purged: %+v", got)
	}
	close(releaseExport)
	if err := result(t, exporting); err != nil {
		t.Fatalf("export: %v", err)
	}
	if n, err := f.m.PurgeDue(ctx, lifecycle.System); n != 1 || err != nil {
		t.Errorf("PurgeDue after the export: purged %d, %v; want 1 (c), nil", n, err)
	}
	got, _ := f.reg.Get(ctx, a.ID)
	if got.Lifecycle.Operation != lifecycle.OpArchive || got.Lifecycle.Step != "write" {
		t.Fatalf("the running archive was changed by the jobs: %+v", got.Lifecycle)
	}
	free()
	if err := result(t, done); err != nil {
		t.Fatalf("the archive the jobs left alone: %v", err)
	}
	if got, _ := f.reg.Get(ctx, a.ID); got.Status != registry.StatusArchived {
		t.Errorf("a after its archive: %+v", got)
	}
}

func TestLeaseTTLIsChecked(t *testing.T) {
	reg := registry.New(registry.NewMemoryStore(), nil)
	for _, ttl := range []time.Duration{-time.Second, time.Millisecond} {
		_, err := lifecycle.New(lifecycle.Options{Registry: reg, LeaseTTL: ttl})
		if err == nil || !strings.Contains(err.Error(), "LeaseTTL "+ttl.String()) {
			t.Errorf("LeaseTTL %s: err = %v, want a refusal naming it", ttl, err)
		}
	}
	if _, err := lifecycle.New(lifecycle.Options{Registry: reg, LeaseTTL: time.Second}); err != nil {
		t.Errorf("LeaseTTL 1s: %v", err)
	}
}

// TestPanicInExclusiveStopsRenewal: a panic in fn reaches the caller, the
// lease's renewal goroutine ends with it (it would otherwise go on
// renewing, the clock being still), and the tenant is free again once
// the lease has expired.
func TestPanicInExclusiveStopsRenewal(t *testing.T) {
	f := leaseSetup(t, 30*time.Millisecond)
	a := f.provision(t, "acme")
	before := goleak.IgnoreCurrent()
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Fatalf("recovered %v, want the operation's panic", r)
			}
		}()
		f.m.Exclusive(context.Background(), admin, a, "update", func(context.Context) error { panic("boom") })
	}()
	goleak.VerifyNone(t, before)
	err := f.m.Exclusive(t.Context(), admin, a, "update", func(context.Context) error { return nil })
	if !errors.Is(err, lifecycle.ErrBusy) {
		t.Fatalf("right after the panic: %v, want ErrBusy (the lease is not released on a panic)", err)
	}
	f.clock.Advance(time.Second)
	if err := f.m.Exclusive(t.Context(), admin, a, "update", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("after the lease's expiry: %v", err)
	}
}
