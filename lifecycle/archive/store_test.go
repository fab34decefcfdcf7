package archive_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
	"github.com/tenantmcp/tenantmcp/lifecycle/archive/archivetest"
)

func openDir(t *testing.T) (*archive.DirStore, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "archives")
	s, err := archive.OpenDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, dir
}

func TestDirStoreContract(t *testing.T) {
	t.Parallel()
	archivetest.RunStore(t, func(t *testing.T) archive.Store { s, _ := openDir(t); return s })
}

// files lists every file and directory under dir with its mode.
func files(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = fi.Mode()
		return nil
	})
	return out
}

func TestDirStoreOnDisk(t *testing.T) {
	t.Parallel()
	s, dir := openDir(t)
	archivetest.Put(t, s, "t1/a.tar.gz", []byte("a"))
	got := files(t, dir)
	if got["t1/a.tar.gz"] != 0o600 || got["t1"] != fs.ModeDir|0o700 || len(got) != 3 {
		t.Fatalf("on disk: %v, want t1/ 0700 and t1/a.tar.gz 0600", got)
	}
	if err := s.Delete(context.Background(), "t1/a.tar.gz"); err != nil {
		t.Fatal(err)
	}
	if got := files(t, dir); len(got) != 1 {
		t.Fatalf("after Delete: %v, want the empty directory only", got)
	}
}

// A Put that fails after its data is on disk leaves the old archive and
// no temporary file.
func TestDirStoreFailedRename(t *testing.T) {
	t.Parallel()
	s, dir := openDir(t)
	archivetest.Put(t, s, "t/a", []byte("old"))
	boom := errors.New("crash before rename")
	archive.SetBeforeRename(s, func() error { return boom })
	if err := s.Put(context.Background(), "t/a", strings.NewReader("new")); !errors.Is(err, boom) {
		t.Fatalf("Put: %v", err)
	}
	archive.SetBeforeRename(s, nil)
	if got := archivetest.Get(t, s, "t/a"); string(got) != "old" {
		t.Fatalf("after a failed Put: %q", got)
	}
	if got := files(t, dir); len(got) != 3 {
		t.Fatalf("on disk after a failed Put: %v", got)
	}
}

// Files the store did not write — temporary files of a crashed Put,
// links planted in the directory — are neither listed nor followed.
func TestDirStorePlantedFiles(t *testing.T) {
	t.Parallel()
	s, dir := openDir(t)
	archivetest.Put(t, s, "t/a", []byte("a"))
	outside := filepath.Join(t.TempDir(), "secret")
	os.WriteFile(outside, []byte("secret"), 0o600)
	os.WriteFile(filepath.Join(dir, "t", ".tmp-0123"), []byte("partial"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "t", "link"))
	os.Symlink(filepath.Dir(outside), filepath.Join(dir, "dirlink"))
	os.Symlink("a", filepath.Join(dir, "t", "inside"))
	ctx := context.Background()
	names, err := s.List(ctx, "")
	if err != nil || len(names) != 1 || names[0] != "t/a" {
		t.Fatalf("List = %q %v, want only t/a", names, err)
	}
	for _, name := range []string{"t/link", "dirlink/secret", "t/inside"} {
		rc, err := s.Open(ctx, name)
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Errorf("Open(%q) = %q, want a refusal", name, b)
		}
	}
	if names, err := s.List(ctx, "dirlink/"); err != nil || len(names) != 0 {
		t.Errorf("List(dirlink/) = %q %v, want nothing", names, err)
	}
}

func TestDirStoreClosed(t *testing.T) {
	t.Parallel()
	s, _ := openDir(t)
	s.Close()
	ctx := context.Background()
	if err := s.Put(ctx, "a", strings.NewReader("a")); !errors.Is(err, archive.ErrClosed) {
		t.Errorf("Put after Close: %v", err)
	}
	if _, err := s.Open(ctx, "a"); !errors.Is(err, archive.ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
	if err := s.Delete(ctx, "a"); !errors.Is(err, archive.ErrClosed) {
		t.Errorf("Delete after Close: %v", err)
	}
	if _, err := s.List(ctx, ""); !errors.Is(err, archive.ErrClosed) {
		t.Errorf("List after Close: %v", err)
	}
	if _, err := archive.OpenDir(""); err == nil {
		t.Error("OpenDir(\"\") succeeded")
	}
}
