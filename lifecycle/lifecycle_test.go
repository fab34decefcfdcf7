package lifecycle_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/audit"
	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// memBackend is a store.Portable in memory that also records what
// Provision created, so tests can look for orphans.
type memBackend struct {
	mu          sync.Mutex
	provisioned map[tenant.ID]bool
	data        map[tenant.ID]map[string][]byte
}

func newMemBackend() *memBackend {
	return &memBackend{provisioned: map[tenant.ID]bool{}, data: map[tenant.ID]map[string][]byte{}}
}

func (b *memBackend) Provision(ctx context.Context, id tenant.ID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.provisioned[id] = true
	return nil
}

func (b *memBackend) put(id tenant.ID, k, v string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.data[id] == nil {
		b.data[id] = map[string][]byte{}
	}
	b.data[id][k] = []byte(v)
}

func (b *memBackend) snapshot(id tenant.ID) map[string][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.data[id])
}

func (b *memBackend) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	for _, k := range slices.Sorted(maps.Keys(b.snapshot(id))) {
		pw, err := w.Create(k)
		if err != nil {
			return err
		}
		pw.Write(b.snapshot(id)[k])
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (b *memBackend) Import(ctx context.Context, id tenant.ID, r store.PartReader) error {
	if len(b.snapshot(id)) > 0 {
		return store.ErrNotEmpty
	}
	got := map[string][]byte{}
	for _, name := range r.Names() {
		rc, err := r.Open(name)
		if err != nil {
			return err
		}
		v, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return err
		}
		got[name] = v
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.data[id] = got
	b.provisioned[id] = true
	return nil
}

func (b *memBackend) Purge(ctx context.Context, id tenant.ID) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.data, id)
	delete(b.provisioned, id)
	return nil
}

type fixture struct {
	reg        *registry.Registry
	sql, blobs *memBackend
	archives   *archive.DirStore
	auditStore *audit.MemoryStore
	writer     *audit.Writer
	failAt     string // BeforeStep fails at this step
	m          *lifecycle.Manager
}

func setup(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{reg: registry.New(registry.NewMemoryStore(), nil), sql: newMemBackend(), blobs: newMemBackend(), auditStore: audit.NewMemoryStore()}
	var err error
	if f.archives, err = archive.OpenDir(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.archives.Close() })
	_, key, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.writer, err = audit.NewWriter(f.auditStore, key, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.writer.Close(context.Background()) })
	f.m, err = lifecycle.New(lifecycle.Options{
		Registry: f.reg,
		Backends: []lifecycle.Backend{
			{Name: "sql", Provision: f.sql.Provision, Data: f.sql},
			{Name: "blobs", Provision: f.blobs.Provision, Data: f.blobs},
		},
		Archives:   f.archives,
		Audit:      f.writer,
		AuditStore: f.auditStore,
		Strategy:   "test",
		TempDir:    t.TempDir(),
		BeforeStep: func(op, step string, id tenant.ID) error {
			if op+"/"+step == f.failAt {
				return errCrash
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

var errCrash = errors.New("crash injected")

var admin = lifecycle.Principal{Subject: "ops", Via: "test"}

func (f *fixture) provision(t *testing.T, ext string) *registry.Tenant {
	t.Helper()
	tn, err := f.m.Provision(t.Context(), admin, registry.Tenant{Issuer: "https://idp/", ExternalID: ext})
	if err != nil {
		t.Fatalf("provision %s: %v", ext, err)
	}
	return tn
}

// orphans lists storage that no registry record names.
func (f *fixture) orphans(t *testing.T) []string {
	t.Helper()
	var out []string
	for name, b := range map[string]*memBackend{"sql": f.sql, "blobs": f.blobs} {
		b.mu.Lock()
		ids := slices.Collect(maps.Keys(b.provisioned))
		b.mu.Unlock()
		for _, id := range ids {
			if _, err := f.reg.Get(t.Context(), id); err != nil {
				out = append(out, name+":"+string(id))
			}
		}
	}
	return out
}

// TestProvisionSurvivesACrashAtEveryStep: a crash between any two steps
// leaves a provisioning record and no orphan; running create again (or
// the reconciler) finishes it, once.
func TestProvisionSurvivesACrashAtEveryStep(t *testing.T) {
	for _, crash := range []string{"provision/sql", "provision/blobs", "provision/activate"} {
		for _, finish := range []string{"create", "reconcile"} {
			t.Run(crash+"/"+finish, func(t *testing.T) {
				f := setup(t)
				f.failAt = crash
				rec := registry.Tenant{Issuer: "https://idp/", ExternalID: "acme", Status: registry.StatusTrial, TrialEndsAt: time.Now().AddDate(0, 0, 14)}
				if _, err := f.m.Provision(t.Context(), admin, rec); !errors.Is(err, errCrash) {
					t.Fatalf("provision with a crash at %s: %v", crash, err)
				}
				half, err := f.reg.Lookup(t.Context(), "https://idp/", "acme")
				if err != nil || half.Status != registry.StatusProvisioning || half.Lifecycle.Operation+"/"+half.Lifecycle.Step != crash {
					t.Fatalf("after the crash: %+v %v", half, err)
				}
				if err := half.Check(time.Now()); !errors.Is(err, registry.ErrProvisioning) {
					t.Fatalf("a provisioning tenant is served: %v", err)
				}
				if o := f.orphans(t); len(o) > 0 {
					t.Fatalf("orphans after a crash: %v", o)
				}
				f.failAt = ""
				var done *registry.Tenant
				if finish == "create" {
					done, err = f.m.Provision(t.Context(), admin, rec)
				} else {
					var n int
					n, err = f.m.Reconcile(t.Context(), lifecycle.System, 0)
					if n != 1 {
						t.Fatalf("reconcile finished %d operations, want 1", n)
					}
					done, _ = f.reg.Get(t.Context(), half.ID)
				}
				if err != nil {
					t.Fatal(err)
				}
				if done.ID != half.ID || done.Status != registry.StatusTrial || !done.Lifecycle.IsZero() {
					t.Fatalf("finished tenant: %+v", done)
				}
				if !f.sql.provisioned[done.ID] || !f.blobs.provisioned[done.ID] {
					t.Fatal("storage missing after resuming")
				}
				all, _ := f.reg.List(t.Context())
				if len(all) != 1 {
					t.Fatalf("%d tenants after resuming, want 1", len(all))
				}
				if _, err := f.m.Provision(t.Context(), admin, rec); !errors.Is(err, registry.ErrExists) {
					t.Fatalf("provisioning a finished tenant again: %v, want ErrExists", err)
				}
			})
		}
	}
}

// corruptManifest re-compresses the archive with a different gzip level:
// the same tar, a different file.
func corruptManifest(t *testing.T, raw []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	var out bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
	zw.Write(plain)
	zw.Close()
	return out.Bytes()
}

// corruptPart changes one byte of the archive's content where marker
// first appears (inside a part), keeping the gzip and tar framing valid.
func corruptPart(t *testing.T, raw []byte, marker string) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(plain, []byte(marker))
	if i < 0 {
		t.Fatalf("marker %q not in the archive", marker)
	}
	plain[i] ^= 1
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(plain)
	zw.Close()
	return out.Bytes()
}

// checksums of every tenant's data other than skip.
func (f *fixture) others(skip tenant.ID) string {
	var b strings.Builder
	for _, be := range []*memBackend{f.sql, f.blobs} {
		be.mu.Lock()
		for _, id := range slices.Sorted(maps.Keys(be.data)) {
			if id == skip {
				continue
			}
			for _, k := range slices.Sorted(maps.Keys(be.data[id])) {
				fmt.Fprintf(&b, "%s/%s=%x\n", id, k, be.data[id][k])
			}
		}
		be.mu.Unlock()
	}
	return b.String()
}

// TestArchivePurgeRestore: archive → purge → restore gives back the same
// data, status and id, and no other tenant changes at any point.
func TestArchivePurgeRestore(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	a, b := f.provision(t, "acme"), f.provision(t, "globex")
	f.sql.put(a.ID, "rows", "acme\x00rows")
	f.blobs.put(a.ID, "notes/q3.md", "acme notes")
	f.sql.put(b.ID, "rows", "globex rows")
	f.blobs.put(b.ID, "notes/q3.md", "globex notes")
	wantA := f.sql.snapshot(a.ID)
	others := f.others(a.ID)

	arch, err := f.m.Archive(ctx, admin, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if arch.Status != registry.StatusArchived || arch.Lifecycle.Archive == "" || arch.Lifecycle.PurgeAfter.Sub(arch.Lifecycle.ArchivedAt) != lifecycle.DefaultRetention {
		t.Fatalf("archived: %+v", arch)
	}
	if err := arch.Check(time.Now()); !errors.Is(err, registry.ErrArchived) {
		t.Fatalf("an archived tenant is served: %v", err)
	}
	if n, err := f.m.PurgeDue(ctx, lifecycle.System); n != 0 || err != nil {
		t.Fatalf("PurgeDue before the retention ends purged %d: %v", n, err)
	}
	if _, err := f.m.Purge(ctx, admin, b.ID); err == nil {
		t.Fatal("an active tenant was purged")
	}
	purged, err := f.m.Purge(ctx, admin, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if purged.Status != registry.StatusPurged || len(f.sql.snapshot(a.ID)) != 0 || len(f.blobs.snapshot(a.ID)) != 0 || f.sql.provisioned[a.ID] {
		t.Fatalf("after purge: %+v, data %v %v", purged, f.sql.snapshot(a.ID), f.blobs.snapshot(a.ID))
	}
	if got := f.others(a.ID); got != others {
		t.Fatalf("purge changed other tenants:\n%s\nwant\n%s", got, others)
	}

	back, err := f.m.RestoreArchive(ctx, admin, arch.Lifecycle.Archive)
	if err != nil {
		t.Fatal(err)
	}
	if back.ID != a.ID || back.Status != registry.StatusActive {
		t.Fatalf("restored: %+v", back)
	}
	if got := f.sql.snapshot(a.ID); !maps.EqualFunc(got, wantA, bytes.Equal) || string(f.blobs.snapshot(a.ID)["notes/q3.md"]) != "acme notes" {
		t.Fatalf("restored data %v, want %v", got, wantA)
	}
	if got := f.others(a.ID); got != others {
		t.Fatal("restore changed other tenants")
	}
	// Every step is in acme's own chain.
	f.writer.Flush(ctx)
	var methods []string
	f.auditStore.Scan(ctx, string(a.ID), 1, func(r *audit.Record) error {
		if strings.Contains(string(r.Body), `"kind":"lifecycle"`) {
			methods = append(methods, string(r.Body))
		}
		return nil
	})
	for _, want := range []string{`"lifecycle/archive"`, `"lifecycle/purge"`, `"lifecycle/restore"`, `"act":{"sub":"ops"}`} {
		if !strings.Contains(strings.Join(methods, "\n"), want) {
			t.Errorf("acme's trail lacks %s", want)
		}
	}
}

// TestPurgeResumesAfterAFailure: a purge that stops halfway finishes
// when run again; the reconciler finishes it too.
func TestPurgeResumesAfterAFailure(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	a := f.provision(t, "acme")
	f.sql.put(a.ID, "rows", "x")
	f.blobs.put(a.ID, "k", "y")
	if _, err := f.m.Archive(ctx, admin, a.ID); err != nil {
		t.Fatal(err)
	}
	f.failAt = "purge/blobs"
	if _, err := f.m.Purge(ctx, admin, a.ID); !errors.Is(err, errCrash) {
		t.Fatalf("purge with a crash: %v", err)
	}
	if len(f.sql.snapshot(a.ID)) != 0 || len(f.blobs.snapshot(a.ID)) == 0 {
		t.Fatal("the purge did not stop where it was told to")
	}
	f.failAt = ""
	if n, err := f.m.Reconcile(ctx, lifecycle.System, 0); n != 1 || err != nil {
		t.Fatalf("reconcile: %d %v", n, err)
	}
	got, _ := f.reg.Get(ctx, a.ID)
	if got.Status != registry.StatusPurged || len(f.blobs.snapshot(a.ID)) != 0 {
		t.Fatalf("after resuming: %+v %v", got, f.blobs.snapshot(a.ID))
	}
}

// TestCorruptArchiveIsRefused: a restore from an archive with one byte
// changed names the broken part and changes nothing.
func TestCorruptArchiveIsRefused(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	a := f.provision(t, "acme")
	f.blobs.put(a.ID, "big.bin", strings.Repeat("0123456789", 10000))
	arch, err := f.m.Delete(ctx, admin, a.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Get(ctx, a.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a deleted and purged tenant is still registered: %v", err)
	}
	rc, err := f.archives.Open(ctx, arch.Lifecycle.Archive)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(rc)
	rc.Close()
	bad := corruptPart(t, raw, "0123456789")
	if _, err := f.m.Restore(ctx, admin, bytes.NewReader(bad), ""); err == nil || !strings.Contains(err.Error(), "big.bin") {
		t.Fatalf("restore of a corrupt archive: %v, want the failing part named", err)
	}
	if _, err := f.reg.Get(ctx, a.ID); !errors.Is(err, registry.ErrNotFound) || len(f.blobs.snapshot(a.ID)) != 0 {
		t.Fatal("a refused restore changed something")
	}
	// An archive in the store is checked against the checksum beside it:
	// a replaced archive (even a valid one) is refused.
	if err := f.archives.Put(ctx, arch.Lifecycle.Archive, bytes.NewReader(corruptManifest(t, raw))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.RestoreArchive(ctx, admin, arch.Lifecycle.Archive); !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("restore of a replaced archive: %v, want ErrCorrupt", err)
	}
	// The intact archive restores.
	if back, err := f.m.Restore(ctx, admin, bytes.NewReader(raw), ""); err != nil || back.ID != a.ID {
		t.Fatalf("restore: %v %+v", err, back)
	}
}

// TestDeletedExternalIDIsNew: after a delete, the same external id is a
// new tenant with a new id and none of the old data.
func TestDeletedExternalIDIsNew(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	old := f.provision(t, "acme")
	f.sql.put(old.ID, "rows", "old data")
	if _, err := f.m.Delete(ctx, admin, old.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Provision(ctx, admin, registry.Tenant{Issuer: "https://idp/", ExternalID: "acme"}); !errors.Is(err, registry.ErrExists) {
		t.Fatalf("re-adding before the purge: %v, want ErrExists", err)
	}
	if _, err := f.m.Purge(ctx, admin, old.ID); err != nil {
		t.Fatal(err)
	}
	fresh := f.provision(t, "acme")
	if fresh.ID == old.ID || len(f.sql.snapshot(fresh.ID)) != 0 {
		t.Fatalf("re-added tenant %s sees old data %v", fresh.ID, f.sql.snapshot(fresh.ID))
	}
}

// TestExport: an export of a live tenant changes nothing and holds its
// data and audit trail.
func TestExport(t *testing.T) {
	f := setup(t)
	a := f.provision(t, "acme")
	f.blobs.put(a.ID, "k", "v")
	f.writer.Flush(t.Context())
	path := filepath.Join(t.TempDir(), "acme.tar.gz")
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.m.Export(t.Context(), lifecycle.System, a.ID, out); err != nil {
		t.Fatal(err)
	}
	out.Close()
	in, _ := os.Open(path)
	defer in.Close()
	ar, err := archive.Open(in, t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	if names := ar.Section("blobs").Names(); !slices.Equal(names, []string{"k"}) {
		t.Fatalf("blobs section: %v", names)
	}
	if names := ar.Section(lifecycle.AuditSection).Names(); len(names) != 1 {
		t.Fatalf("audit section: %v", names)
	}
	if got, _ := f.reg.Get(t.Context(), a.ID); got.Status != registry.StatusActive {
		t.Fatalf("export changed the tenant: %+v", got)
	}
}

// TestDeleteAPurgedTenant: a tenant purged without being deleted can be
// deleted afterwards, which frees its external id.
func TestDeleteAPurgedTenant(t *testing.T) {
	f := setup(t)
	ctx := t.Context()
	a := f.provision(t, "acme")
	if _, err := f.m.Archive(ctx, admin, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Purge(ctx, admin, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Delete(ctx, admin, a.ID, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Get(ctx, a.ID); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a deleted purged tenant is still registered: %v", err)
	}
	if fresh := f.provision(t, "acme"); fresh.ID == a.ID {
		t.Fatal("the re-added tenant has the old id")
	}
}
