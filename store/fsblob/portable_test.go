package fsblob_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestPortable(t *testing.T) {
	t.Parallel()
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		s, err := fsblob.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s, s
	})
}

func TestExportParts(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	data := map[string]string{"b": "2", "a/x": "1", "Plan Q3.md": "plan", "dir": "d", "dir/a": "da"}
	for k, v := range data {
		if err := s.Put(ctx, id, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	parts := &storetest.MemoryParts{}
	if err := s.Export(ctx, id, parts); err != nil {
		t.Fatal(err)
	}
	want := []string{"blobs/Plan Q3.md", "blobs/a/x", "blobs/b", "blobs/dir", "blobs/dir/a"}
	if got := parts.Names(); !slices.Equal(got, want) {
		t.Fatalf("parts = %q, want %q", got, want)
	}
	for _, n := range want {
		if b, _ := parts.Part(n); string(b) != data[strings.TrimPrefix(n, fsblob.PartPrefix)] {
			t.Fatalf("part %s = %q", n, b)
		}
	}
}

// Links planted in a tenant's directory are neither exported nor
// followed by Purge.
func TestPortableLinksNotFollowed(t *testing.T) {
	t.Parallel()
	s, root, a, b := plantSetup(t)
	ctx := context.Background()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "keep.o"), []byte("A:outside"), 0o600)
	bdir := filepath.Join(root, string(b))
	for link, target := range map[string]string{
		"docs.d":   filepath.Join("..", string(a), "docs.d"),
		"secret.o": filepath.Join(root, string(a), "secret.o"),
		"out.d":    outside,
	} {
		if err := os.Symlink(target, filepath.Join(bdir, link)); err != nil {
			t.Fatal(err)
		}
	}
	parts := &storetest.MemoryParts{}
	if err := s.Export(ctx, b, parts); err != nil {
		t.Fatal(err)
	}
	if got := parts.Names(); !slices.Equal(got, []string{"blobs/own"}) {
		t.Fatalf("B's export = %q, want only blobs/own", got)
	}
	if err := s.Purge(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(bdir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("B's directory after Purge: %v", err)
	}
	wantAIntact(t, s, a)
	if got := entries(t, outside); !slices.Equal(got, []string{"keep.o"}) {
		t.Fatalf("outside the root after Purge: %q", got)
	}

	// A tenant path that is a link is refused by Export and Import and
	// removed (not followed) by Purge.
	c := tenant.NewID()
	if err := os.Symlink(string(a), filepath.Join(root, string(c))); err != nil {
		t.Fatal(err)
	}
	if err := s.Export(ctx, c, &storetest.MemoryParts{}); !errors.Is(err, fsblob.ErrUnsafePath) {
		t.Fatalf("Export via a linked tenant dir: err = %v, want ErrUnsafePath", err)
	}
	if err := s.Import(ctx, c, parts); !errors.Is(err, fsblob.ErrUnsafePath) {
		t.Fatalf("Import via a linked tenant dir: err = %v, want ErrUnsafePath", err)
	}
	if err := s.Purge(ctx, c); err != nil {
		t.Fatal(err)
	}
	wantAIntact(t, s, a)
}

// A tenant directory with no objects (empty directories, files this
// package ignores) counts as empty and is replaced; a failed Import and
// a Purge leave no staging directory.
func TestImportReplacesEmptyDirectory(t *testing.T) {
	t.Parallel()
	s, root := setup(t)
	ctx := context.Background()
	src, dst := tenant.NewID(), tenant.NewID()
	if err := s.Put(ctx, src, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	parts := &storetest.MemoryParts{}
	if err := s.Export(ctx, src, parts); err != nil {
		t.Fatal(err)
	}
	ddir := filepath.Join(root, string(dst))
	os.MkdirAll(filepath.Join(ddir, "empty.d"), 0o700)
	os.WriteFile(filepath.Join(ddir, "junk"), []byte("x"), 0o600)
	if err := s.Import(ctx, dst, parts); err != nil {
		t.Fatalf("Import over a directory without objects: %v", err)
	}
	if got := entries(t, ddir); !slices.Equal(got, []string{"k.o"}) {
		t.Fatalf("tenant directory after Import = %q", got)
	}

	big := &storetest.MemoryParts{}
	w, _ := big.Create("blobs/a")
	w.Write([]byte("small"))
	w.Close()
	w, _ = big.Create("blobs/big")
	w.Write(make([]byte, store.MaxValueSize+1))
	w.Close()
	other := tenant.NewID()
	if err := s.Import(ctx, other, big); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("Import of an oversized part: err = %v, want ErrTooLarge", err)
	}
	// A crash would leave a staging directory; Purge removes it.
	os.MkdirAll(filepath.Join(root, string(other)+".import-0123.t", "x.d"), 0o700)
	if err := s.Purge(ctx, other); err != nil {
		t.Fatal(err)
	}
	want := []string{string(dst), filepath.Join(string(dst), "k.o"), string(src), filepath.Join(string(src), "k.o")}
	slices.Sort(want)
	if got := entries(t, root); !slices.Equal(got, want) {
		t.Fatalf("root after failed Import and Purge = %q, want %q", got, want)
	}
}

// An export is named parts; restoring it under another id copies the
// tenant, and Purge removes the original.
func ExampleStore_Export() {
	root, err := os.MkdirTemp("", "blobs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(root)
	blobs, err := fsblob.Open(root, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer blobs.Close()

	ctx := context.Background()
	from, to := tenant.NewID(), tenant.NewID()
	blobs.Put(ctx, from, "reports/Q3.pdf", []byte("%PDF-1.7"))
	parts := &storetest.MemoryParts{} // an archive, in real use
	if err := blobs.Export(ctx, from, parts); err != nil {
		log.Fatal(err)
	}
	fmt.Println(parts.Names())
	fmt.Println(blobs.Import(ctx, to, parts), blobs.Purge(ctx, from))
	v, err := blobs.Get(ctx, to, "reports/Q3.pdf")
	fmt.Printf("%s %v\n", v, err)
	_, err = blobs.Get(ctx, from, "reports/Q3.pdf")
	fmt.Println(err)
	// Output:
	// [blobs/reports/Q3.pdf]
	// <nil> <nil>
	// %PDF-1.7 <nil>
	// store: not found
}
