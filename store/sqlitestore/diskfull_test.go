package sqlitestore_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// fill writes a file in dir until the filesystem has no room left and
// returns a function that removes it again.
func fill(t *testing.T, dir string) (free func()) {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	return func() {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
	}
}

// integrityCheck opens a tenant's file directly and runs PRAGMA
// integrity_check.
func integrityCheck(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&res); err != nil || res != "ok" {
		t.Fatalf("integrity_check of %s: %q, %v; want ok", filepath.Base(path), res, err)
	}
}

// TestDiskFull: with the filesystem of the tenant files full, a write
// (overwrite or new key) fails with store.ErrStorageFull, saying the
// storage is full; the old value is intact and the new key absent; the
// file passes integrity_check; another tenant reads its own data
// meanwhile; and once there is room again writes succeed on the same
// Store, without reopening anything.
func TestDiskFull(t *testing.T) {
	root := testenv.SmallFilesystem(t, "512k")
	s, err := sqlitestore.Open(filepath.Join(root, "tenants"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	a, b := tenant.NewID(), tenant.NewID()
	for _, id := range []tenant.ID{a, b} {
		if err := s.Put(ctx, id, "doc", []byte("old value of "+string(id))); err != nil {
			t.Fatal(err)
		}
	}
	free := fill(t, root)
	big := bytes.Repeat([]byte("x"), 256<<10) // more than the filesystem had left even before it was filled

	for _, key := range []string{"doc", "new"} {
		err := s.Put(ctx, a, key, big)
		if !errors.Is(err, store.ErrStorageFull) || !strings.Contains(err.Error(), "storage full") {
			t.Fatalf("put %q on a full disk: %v; want store.ErrStorageFull", key, err)
		}
	}
	if got, err := s.Get(ctx, a, "doc"); err != nil || string(got) != "old value of "+string(a) {
		t.Fatalf("after the failed overwrite: %.40q, %v; want the old value intact", got, err)
	}
	if got, err := s.Get(ctx, a, "new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the failed create: %.40q, %v; want not found", got, err)
	}
	if got, err := s.Get(ctx, b, "doc"); err != nil || string(got) != "old value of "+string(b) {
		t.Fatalf("the other tenant while the disk is full: %.40q, %v", got, err)
	}
	integrityCheck(t, s.Path(a))

	free()
	if err := s.Put(ctx, a, "doc", big); err != nil {
		t.Fatalf("put once there is room again: %v", err)
	}
	if got, err := s.Get(ctx, a, "doc"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("after the write with room again: %d bytes, %v", len(got), err)
	}
	integrityCheck(t, s.Path(a))
}
