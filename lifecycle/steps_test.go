package lifecycle_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/tenantmcp/tenantmcp/lifecycle"
	"github.com/tenantmcp/tenantmcp/registry"
)

// TestProgress: an operation stopped at any step reports that step's
// place among Steps, the steps it really persists.
func TestProgress(t *testing.T) {
	f := setup(t)
	if got := f.m.Steps(lifecycle.OpProvision, nil); !slices.Equal(got, []string{"record", "sql", "blobs", "activate"}) {
		t.Fatalf("provision steps: %v", got)
	}
	for i, step := range f.m.Steps(lifecycle.OpProvision, nil)[1:] {
		f.failAt = "provision/" + step
		ext := "p-" + step
		if _, err := f.m.Provision(t.Context(), admin, registry.Tenant{Issuer: "https://idp/", ExternalID: ext}); !errors.Is(err, errCrash) {
			t.Fatalf("provision with a crash at %s: %v", step, err)
		}
		rec, err := f.reg.Lookup(t.Context(), "https://idp/", ext)
		if err != nil {
			t.Fatal(err)
		}
		if done, total, ok := f.m.Progress(rec); !ok || done != i+1 || total != 4 {
			t.Errorf("stopped at %s: progress %d/%d %v, want %d/4", step, done, total, ok, i+1)
		}
	}
	f.failAt = ""
	tn := f.provision(t, "done")
	if _, _, ok := f.m.Progress(tn); ok {
		t.Errorf("a finished tenant has progress: %+v", tn.Lifecycle)
	}
	f.failAt = "archive/write"
	if _, err := f.m.Archive(t.Context(), admin, tn.ID); !errors.Is(err, errCrash) {
		t.Fatalf("archive: %v", err)
	}
	rec, _ := f.reg.Get(t.Context(), tn.ID)
	if done, total, ok := f.m.Progress(rec); !ok || done != 1 || total != 2 {
		t.Errorf("archive stopped at write: %d/%d %v", done, total, ok)
	}
	f.failAt = ""
	if _, err := f.m.Archive(t.Context(), admin, tn.ID); err != nil {
		t.Fatal(err)
	}
	f.failAt = "purge/blobs"
	if _, err := f.m.Purge(t.Context(), admin, tn.ID); !errors.Is(err, errCrash) {
		t.Fatalf("purge: %v", err)
	}
	rec, _ = f.reg.Get(t.Context(), tn.ID)
	if done, total, ok := f.m.Progress(rec); !ok || done != 1 || total != 2 {
		t.Errorf("purge stopped at blobs: %d/%d %v", done, total, ok)
	}
	rec.Lifecycle.Deleted = true
	if got := f.m.Steps(lifecycle.OpPurge, rec); !slices.Equal(got, []string{"sql", "blobs", "remove_record"}) {
		t.Errorf("purge steps of a deleted tenant: %v", got)
	}
	if got := f.m.Steps(lifecycle.OpRestore, nil); !slices.Equal(got, []string{"record", "sql", "blobs", "activate"}) {
		t.Errorf("restore steps: %v", got)
	}
}
