package admin_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/admin"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/registry/pgstore"
	"github.com/tenantmcp/tenantmcp/registry/sqlitestore"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// The tests of this file run every lifecycle operation through
// admin.Service on two "processes" — two Services, each with its own
// registry handle, Manager and clock reading — over one registry store
// (one SQLite file, or one PostgreSQL database like replicas) and one set
// of tenant data, and check that operations on one tenant exclude each
// other while operations on other tenants do not wait.

const lockIssuer = "https://idp.example/"

var (
	opsHTTP = admin.Principal{Subject: "ops@example", Issuer: "https://admins.example/", Via: admin.ViaHTTP}
	opsCLI  = admin.Principal{Subject: "cli:bob", Via: admin.ViaCLI}
)

// opGate holds one call of a backend until released.
type opGate struct {
	entered, release chan struct{}
	once             sync.Once
}

func newOpGate() *opGate { return &opGate{entered: make(chan struct{}), release: make(chan struct{})} }

// wait signals that the call arrived and waits for the release or the
// end of ctx.
func (g *opGate) wait(ctx context.Context) error {
	g.once.Do(func() { close(g.entered) })
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// gatedData is tenant data in memory, shared by the "processes", whose
// calls can be held at a gate armed for a method and a tenant ("" = any
// tenant), once.
type gatedData struct {
	mu    sync.Mutex
	data  map[tenant.ID]map[string]string
	gates map[string]*opGate // method + "/" + tenant id
}

func newOpGatedData() *gatedData {
	return &gatedData{data: map[tenant.ID]map[string]string{}, gates: map[string]*opGate{}}
}

// arm makes the next call of method for id wait at a new gate.
func (d *gatedData) arm(method string, id tenant.ID) *opGate {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := newOpGate()
	d.gates[method+"/"+string(id)] = g
	return g
}

func (d *gatedData) hold(ctx context.Context, method string, id tenant.ID) error {
	d.mu.Lock()
	g := d.gates[method+"/"+string(id)]
	if g == nil {
		g = d.gates[method+"/"]
	}
	delete(d.gates, method+"/"+string(id))
	delete(d.gates, method+"/")
	d.mu.Unlock()
	if g == nil {
		return nil
	}
	return g.wait(ctx)
}

func (d *gatedData) Provision(ctx context.Context, id tenant.ID) error {
	if err := d.hold(ctx, "provision", id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.data[id] == nil {
		d.data[id] = map[string]string{"doc": "hello from " + string(id)}
	}
	return nil
}

func (d *gatedData) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	if err := d.hold(ctx, "export", id); err != nil {
		return err
	}
	d.mu.Lock()
	parts := maps.Clone(d.data[id])
	d.mu.Unlock()
	for k, v := range parts {
		pw, err := w.Create(k)
		if err != nil {
			return err
		}
		io.WriteString(pw, v)
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (d *gatedData) Import(ctx context.Context, id tenant.ID, r store.PartReader) error {
	got := map[string]string{}
	for _, name := range r.Names() {
		rc, err := r.Open(name)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		got[name] = string(b)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.data[id]) > 0 {
		return store.ErrNotEmpty
	}
	d.data[id] = got
	return nil
}

func (d *gatedData) Purge(ctx context.Context, id tenant.ID) error {
	if err := d.hold(ctx, "purge", id); err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.data, id)
	return nil
}

// lockFixture is two processes over one registry store.
type lockFixture struct {
	data      *gatedData
	clock     *testenv.Clock
	stores    [2]registry.Store
	svc       [2]*admin.Service
	a, b      *registry.Tenant // two active tenants
	lifecycle [2]*lifecycle.Manager
}

// registries open two handles on one registry store, as two processes
// (or replicas) would.
var registries = map[string]func(t *testing.T) [2]registry.Store{
	"sqlite": func(t *testing.T) [2]registry.Store {
		path := filepath.Join(t.TempDir(), "registry.db")
		var out [2]registry.Store
		for i := range out {
			s, err := sqlitestore.Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			out[i] = s
		}
		return out
	},
	"postgres": func(t *testing.T) [2]registry.Store {
		dsn := testenv.Postgres(t)
		var out [2]registry.Store
		for i := range out {
			s, err := pgstore.Open(context.Background(), dsn, &pgstore.Options{MaxConns: 4})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			out[i] = s
		}
		return out
	},
}

func lockSetup(t *testing.T, open func(t *testing.T) [2]registry.Store) *lockFixture {
	t.Helper()
	f := &lockFixture{data: newOpGatedData(), clock: testenv.NewClock(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)), stores: open(t)}
	archives, err := archive.OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { archives.Close() })
	tmp := t.TempDir()
	for i, st := range f.stores {
		reg := registry.New(st, &registry.Options{Now: f.clock.Now})
		m, err := lifecycle.New(lifecycle.Options{
			Registry: reg,
			Backends: []lifecycle.Backend{{Name: "docs", Provision: f.data.Provision, Data: f.data}},
			Archives: archives, Strategy: "test", TempDir: tmp, Now: f.clock.Now,
		})
		if err != nil {
			t.Fatal(err)
		}
		f.lifecycle[i] = m
		if f.svc[i], err = admin.NewService(admin.Options{Registry: reg, Store: admin.NewMemoryStore(), Lifecycle: m, Issuer: lockIssuer, Now: f.clock.Now}); err != nil {
			t.Fatal(err)
		}
	}
	f.a, f.b = f.create(t, 0, "org_a"), f.create(t, 1, "org_b")
	return f
}

func (f *lockFixture) create(t *testing.T, proc int, ext string) *registry.Tenant {
	t.Helper()
	tn, _, err := f.svc[proc].CreateTenant(context.Background(), opsHTTP, admin.TenantSpec{ExternalID: ext}, "")
	if err != nil {
		t.Fatalf("create %s: %v", ext, err)
	}
	return tn
}

// result is what an operation started in the background returned.
type result struct {
	t   *registry.Tenant
	err error
}

// bg is an operation started in the background, held at gate g.
type bg struct {
	g    *opGate
	out  chan result
	once sync.Once
}

// release opens the gate, once.
func (b *bg) release() { b.once.Do(func() { close(b.g.release) }) }

// background runs op in a goroutine, waits until it is held at gate g
// (armed before) and returns it. The test ends it with wait; if the test
// fails first, the cleanup releases the gate and waits for it.
func background(t *testing.T, g *opGate, op func() (*registry.Tenant, error)) *bg {
	t.Helper()
	b := &bg{g: g, out: make(chan result, 1)}
	go func() {
		tn, err := op()
		b.out <- result{tn, err}
	}()
	t.Cleanup(func() {
		b.release()
		select {
		case _, ok := <-b.out:
			if ok {
				close(b.out)
			}
		case <-time.After(10 * time.Second):
			t.Error("the background operation did not end")
		}
	})
	select {
	case <-g.entered:
	case r := <-b.out:
		close(b.out)
		t.Fatalf("the operation ended before reaching its gate: %+v, %v", r.t, r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("the operation did not reach its gate")
	}
	return b
}

// wait releases the gate and returns the operation's result.
func wait(t *testing.T, b *bg) result {
	t.Helper()
	b.release()
	select {
	case r := <-b.out:
		close(b.out) // the cleanup's receive returns at once
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the operation did not end after its gate was released")
		return result{}
	}
}

// busyMessage is the refusal while op, started at the fixture's clock by
// p, holds tn.
func busyMessage(tn *registry.Tenant, op string, at time.Time, p admin.Principal) string {
	art := "a"
	if strings.ContainsRune("aeiou", rune(op[0])) {
		art = "an"
	}
	return fmt.Sprintf("tenant %q (%s): %s %s started at %s by %s via %s is under way; retry when it ends",
		tn.ExternalID, tn.ID, art, op, at.UTC().Format(time.RFC3339), p.Subject, p.Via)
}

// wantBusy checks that err is the refusal want, classified as ErrBusy,
// and as ErrInvalid for callers that do not know ErrBusy.
func wantBusy(t *testing.T, what string, err error, want string) {
	t.Helper()
	var be *lifecycle.BusyError
	switch {
	case err == nil:
		t.Errorf("%s while the tenant is busy: succeeded, want refused with %q", what, want)
	case !errors.Is(err, lifecycle.ErrBusy) || !errors.As(err, &be):
		t.Errorf("%s while the tenant is busy: err = %v, want a *lifecycle.BusyError", what, err)
	case !strings.Contains(err.Error(), want):
		t.Errorf("%s while the tenant is busy: err = %q, want it to say %q", what, err, want)
	case !errors.Is(err, registry.ErrInvalid) || !admin.CallerError(err):
		t.Errorf("%s: the refusal %v is not a caller error (ErrInvalid) for callers that do not know ErrBusy", what, err)
	}
}

func TestOperationsOnOneTenantExcludeEachOther(t *testing.T) {
	for name, open := range registries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testOperationsExclude(t, lockSetup(t, open))
		})
	}
}

func testOperationsExclude(t *testing.T, f *lockFixture) {
	ctx := context.Background()
	a, b := f.a, f.b

	// An archive of A, held while it writes the archive.
	g := f.data.arm("export", a.ID)
	started := f.clock.Now()
	archiving := background(t, g, func() (*registry.Tenant, error) { return f.svc[0].ArchiveTenant(ctx, opsHTTP, a.ID) })
	f.clock.Advance(time.Second) // the refusals say when the archive started, not when they were made
	want := busyMessage(a, "archive", started, opsHTTP)
	for proc, svc := range f.svc { // the same process, and another
		p := opsCLI
		_, err := svc.ResumeTenant(ctx, p, a.ID, "customer paid")
		wantBusy(t, fmt.Sprintf("process %d: resume", proc), err, want)
		_, err = svc.SuspendTenant(ctx, p, a.ID, "abuse")
		wantBusy(t, fmt.Sprintf("process %d: suspend", proc), err, want)
		_, err = svc.ArchiveTenant(ctx, p, a.ID)
		wantBusy(t, fmt.Sprintf("process %d: archive", proc), err, want)
		_, err = svc.PurgeTenant(ctx, p, a.ID)
		wantBusy(t, fmt.Sprintf("process %d: purge", proc), err, want)
		_, err = svc.DeleteTenant(ctx, p, a.ID, true)
		wantBusy(t, fmt.Sprintf("process %d: delete", proc), err, want)
		name := "Renamed"
		_, err = svc.UpdateTenant(ctx, p, a.ID, admin.TenantPatch{Name: &name})
		wantBusy(t, fmt.Sprintf("process %d: update", proc), err, want)
		err = svc.ExportTenant(ctx, p, a.ID, io.Discard)
		wantBusy(t, fmt.Sprintf("process %d: export", proc), err, want)
	}
	// Tenant B is not held by A's archive, in either process.
	if _, err := f.svc[1].SuspendTenant(ctx, opsCLI, b.ID, "maintenance"); err != nil {
		t.Errorf("suspend tenant B while tenant A is archived: %v", err)
	}
	if _, err := f.svc[0].ResumeTenant(ctx, opsCLI, b.ID, "done"); err != nil {
		t.Errorf("resume tenant B while tenant A is archived: %v", err)
	}
	archivedB, err := f.svc[1].ArchiveTenant(ctx, opsCLI, b.ID)
	if err != nil || archivedB.Status != registry.StatusArchived {
		t.Fatalf("archive tenant B while tenant A is archived: %+v, %v", archivedB, err)
	}

	// The archive of A ends as if alone, and A is free again.
	r := wait(t, archiving)
	if r.err != nil || r.t.Status != registry.StatusArchived {
		t.Fatalf("the archive of A: %+v, %v", r.t, r.err)
	}
	if _, err := f.svc[1].UpdateTenant(ctx, opsCLI, a.ID, admin.TenantPatch{Name: ptr("Acme")}); err != nil {
		t.Errorf("update A after its archive: %v", err)
	}

	// A purge of A, held in the backend, against a restore of its archive.
	g = f.data.arm("purge", a.ID)
	started = f.clock.Now()
	purging := background(t, g, func() (*registry.Tenant, error) { return f.svc[1].PurgeTenant(ctx, opsHTTP, a.ID) })
	_, err = f.svc[0].RestoreArchive(ctx, opsCLI, r.t.Lifecycle.Archive)
	wantBusy(t, "restore", err, busyMessage(a, "purge", started, opsHTTP))
	if d := f.data.snapshot(a.ID); len(d) == 0 {
		t.Errorf("the refused restore or the held purge changed A's data: %v", d)
	}
	// B's restore runs meanwhile.
	if restored, err := f.svc[0].RestoreArchive(ctx, opsCLI, archivedB.Lifecycle.Archive); err != nil || restored.Status != registry.StatusActive {
		t.Errorf("restore B while A is purged: %+v, %v", restored, err)
	}
	if r := wait(t, purging); r.err != nil || r.t.Status != registry.StatusPurged {
		t.Fatalf("the purge of A: %+v, %v", r.t, r.err)
	}
	restored, err := f.svc[0].RestoreArchive(ctx, opsCLI, r.t.Lifecycle.Archive)
	if err != nil || restored.Status != registry.StatusActive || f.data.snapshot(a.ID)["doc"] != "hello from "+string(a.ID) {
		t.Fatalf("restore A after its purge: %+v, %v (data %v)", restored, err, f.data.snapshot(a.ID))
	}
}

func ptr[T any](v T) *T { return &v }

func (d *gatedData) snapshot(id tenant.ID) map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return maps.Clone(d.data[id])
}

// Two creates of one tenant: while the first provisions it, the second —
// in this process or another — is refused as "exists", saying a
// provision is under way; the first alone reports the tenant created.
func TestConcurrentCreatesOfOneTenant(t *testing.T) {
	for name, open := range registries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := lockSetup(t, open)
			ctx := context.Background()
			spec := admin.TenantSpec{ExternalID: "org_new", Name: "New"}
			g := f.data.arm("provision", "")
			started := f.clock.Now()
			creating := background(t, g, func() (*registry.Tenant, error) {
				tn, _, err := f.svc[0].CreateTenant(ctx, opsHTTP, spec, "")
				return tn, err
			})
			half, err := f.stores[1].Get(ctx, lockIssuer, "org_new")
			if err != nil || half.Status != registry.StatusProvisioning {
				t.Fatalf("the tenant being created: %+v, %v; want it provisioning", half, err)
			}
			want := fmt.Sprintf("tenant %q: a provision started at %s by ops@example via http is under way; retry when it ends",
				"org_new", started.Format(time.RFC3339))
			for proc, svc := range f.svc {
				tn, _, err := svc.CreateTenant(ctx, opsCLI, spec, "")
				var be *lifecycle.BusyError
				if tn != nil || !errors.Is(err, registry.ErrExists) || !errors.As(err, &be) || err.Error() != want {
					t.Errorf("process %d: a second create while the first provisions: %+v, %v; want ErrExists and ErrBusy saying %q", proc, tn, err, want)
				}
			}
			r := wait(t, creating)
			if r.err != nil || r.t.Status != registry.StatusActive || r.t.ID != half.ID {
				t.Fatalf("the first create: %+v, %v; want tenant %s active", r.t, r.err, half.ID)
			}
			// Now that it is done, a create is refused as a plain ErrExists.
			_, _, err = f.svc[1].CreateTenant(ctx, opsCLI, spec, "")
			if !errors.Is(err, registry.ErrExists) || errors.Is(err, lifecycle.ErrBusy) {
				t.Errorf("create after the first finished: %v, want ErrExists (not busy)", err)
			}
		})
	}
}

// Many creates of one tenant at the same moment, from both processes:
// exactly one reports it created, every other one "exists".
func TestCreateRaceHasOneWinner(t *testing.T) {
	for name, open := range registries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := lockSetup(t, open)
			const n = 8
			errs := make([]error, n)
			ids := make([]tenant.ID, n)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					tn, _, err := f.svc[i%2].CreateTenant(context.Background(), opsHTTP, admin.TenantSpec{ExternalID: "org_race"}, "")
					if tn != nil {
						ids[i] = tn.ID
					}
					errs[i] = err
				})
			}
			close(start)
			wg.Wait()
			created := 0
			for i, err := range errs {
				switch {
				case err == nil:
					created++
				case !errors.Is(err, registry.ErrExists):
					t.Errorf("create %d: %v, want nil or ErrExists", i, err)
				}
			}
			if created != 1 {
				t.Errorf("%d of %d concurrent creates reported the tenant created, want exactly 1 (errors: %v)", created, n, errs)
			}
		})
	}
}

// A lease left by a holder that crashed refuses others until it ends;
// then the next operation takes it over.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	for name, open := range registries {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := lockSetup(t, open)
			ctx := context.Background()
			now := f.clock.Now()
			crashed := registry.Lease{Issuer: lockIssuer, ExternalID: f.a.ExternalID, Tenant: f.a.ID, Operation: "archive",
				Holder: "cli:alice", Via: "cli", Token: "crashed", AcquiredAt: now, ExpiresAt: now.Add(lifecycle.DefaultLeaseTTL)}
			if err := f.stores[1].AcquireLease(ctx, crashed); err != nil {
				t.Fatal(err)
			}
			f.clock.Advance(lifecycle.DefaultLeaseTTL - time.Second)
			_, err := f.svc[0].SuspendTenant(ctx, opsHTTP, f.a.ID, "abuse")
			wantBusy(t, "suspend before the crashed holder's lease ends", err, busyMessage(f.a, "archive", now, admin.Principal{Subject: "cli:alice", Via: "cli"}))
			f.clock.Advance(time.Second)
			if tn, err := f.svc[0].SuspendTenant(ctx, opsHTTP, f.a.ID, "abuse"); err != nil || tn.Status != registry.StatusSuspended {
				t.Fatalf("suspend once the crashed holder's lease ended: %+v, %v", tn, err)
			}
			// The new holder released it: the crashed one cannot renew it.
			if err := f.stores[1].RenewLease(ctx, lockIssuer, f.a.ExternalID, "crashed", f.clock.Now().Add(time.Hour)); !errors.Is(err, registry.ErrLeaseLost) {
				t.Errorf("the crashed holder renews after the takeover: %v, want ErrLeaseLost", err)
			}
			if tn, err := f.svc[1].ArchiveTenant(ctx, opsCLI, f.a.ID); err != nil || tn.Status != registry.StatusArchived {
				t.Errorf("archive after the takeover: %+v, %v", tn, err)
			}
		})
	}
}
