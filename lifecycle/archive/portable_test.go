package archive_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// A real backend exports into a Writer's section and imports from an
// opened Archive's: same keys, same bytes, under a new tenant id.
func TestBackendRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	blobs, err := fsblob.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer blobs.Close()
	old, restored := tenant.NewID(), tenant.NewID()
	want := map[string][]byte{
		"notes/q3.md":    []byte("# Q3\n"),
		"empty":          {},
		"scans/big.bin":  random(300_000, 3), // beyond the spill threshold
		"Plan Q3 ✓.docx": []byte("docx"),
	}
	for k, v := range want {
		if err := blobs.Put(ctx, old, k, v); err != nil {
			t.Fatal(err)
		}
	}

	var file bytes.Buffer
	w := archive.NewWriter(&file, archive.Meta{Tenant: tenantRecord, Strategy: "sqlite"}, smallSpill)
	if err := blobs.Export(ctx, old, w.Section("blobs")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, sum := w.Sum()
	a, err := open(t, file.Bytes(), &archive.OpenOptions{SHA256: sum})
	if err != nil {
		t.Fatal(err)
	}
	if err := blobs.Import(ctx, restored, a.Section("blobs")); err != nil {
		t.Fatal(err)
	}
	keys, err := blobs.List(ctx, restored, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(want) {
		t.Fatalf("restored keys %q, want %d", keys, len(want))
	}
	for _, k := range keys {
		v, err := blobs.Get(ctx, restored, k)
		if err != nil || !bytes.Equal(v, want[k]) {
			t.Errorf("restored %q: %d bytes (%v), want %d", k, len(v), err, len(want[k]))
		}
	}
	// A second import into the same tenant is refused by the backend.
	if err := blobs.Import(ctx, restored, a.Section("blobs")); !errors.Is(err, store.ErrNotEmpty) {
		t.Errorf("second Import: %v, want store.ErrNotEmpty", err)
	}
	if names := a.Section("blobs").Names(); !slices.IsSorted(names) || len(names) != len(want) {
		t.Errorf("parts %q: want the backend's order (sorted keys)", names)
	}
}
