package fsblob_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// smallFilesystem mounts a 64 KiB tmpfs for the test and returns its
// directory (testenv.SmallFilesystem).
func smallFilesystem(t *testing.T) string { return testenv.SmallFilesystem(t, "64k") }

// TestDiskFull: on a full filesystem a Put fails with ENOSPC in its
// error, the object keeps its previous value (or stays absent), no
// temporary file is left behind, and once there is room again writes
// succeed.
func TestDiskFull(t *testing.T) {
	root := smallFilesystem(t)
	s, err := fsblob.Open(filepath.Join(root, "blobs"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "notes/k", []byte("old value")); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("x"), 1<<20) // far more than the filesystem holds

	err = s.Put(ctx, id, "notes/k", big)
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, store.ErrStorageFull) || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("overwrite on a full disk: %v; want an error saying there is no space left", err)
	}
	if got, err := s.Get(ctx, id, "notes/k"); err != nil || string(got) != "old value" {
		t.Fatalf("after the failed overwrite: %q, %v; want the old value intact", got, err)
	}
	err = s.Put(ctx, id, "notes/new", big)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("new object on a full disk: %v; want ENOSPC", err)
	}
	if got, err := s.Get(ctx, id, "notes/new"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after the failed create: %q, %v; want not found", got, err)
	}
	var files []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) != 1 {
		t.Errorf("files on disk after the failed writes: %q; want only the one object (no partial or temporary file)", files)
	}
	// The failed writes took no space with them.
	if err := s.Put(ctx, id, "notes/k", bytes.Repeat([]byte("y"), 16<<10)); err != nil {
		t.Fatalf("a write that fits, after the failures: %v", err)
	}
	if keys, err := s.List(ctx, id, ""); err != nil || len(keys) != 1 {
		t.Errorf("keys after the failures: %q, %v; want just notes/k", keys, err)
	}
}
