package fsblob_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/fsblob"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func setup(t testing.TB) (*fsblob.Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := fsblob.Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, root
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Backend {
		s, err := fsblob.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestLayout(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 450)
	for _, tc := range []struct{ key, want string }{
		{"a", "a.o"},
		{"dir", "dir.o"},
		{"dir/a", "dir.d/a.o"},
		{"docs/Plan Q3.md", "docs.d/%50lan%20%513.md.o"},
		{"A", "%41.o"},
		{"..a", "..a.o"},
		{"%2e%2e/a", "%252e%252e.d/a.o"},
		{"日", "%e6%97%a5.o"},
		{"x.d/y.o", "x.d.d/y.o.o"},
		{long, long[:200] + ".c/" + long[200:400] + ".c/" + long[400:] + ".o"},
	} {
		if got := fsblob.ObjectPath(tc.key); got != tc.want {
			t.Errorf("ObjectPath(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
	// Keys differing only in case differ on a case-insensitive disk too.
	if a, b := fsblob.ObjectPath("Readme"), fsblob.ObjectPath("readme"); strings.EqualFold(a, b) {
		t.Errorf("%q and %q collide on a case-insensitive file system", a, b)
	}
}

func TestOnDisk(t *testing.T) {
	t.Parallel()
	s, root := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "docs/Plan Q3.md", []byte("plan")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, string(id), "docs.d", "%50lan%20%513.md.o"))
	if err != nil || string(b) != "plan" {
		t.Fatalf("object not at documented path: %q %v", b, err)
	}
}

func TestLongKeys(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	keys := []string{
		strings.Repeat("k", store.MaxKeyLen),                      // one long segment
		strings.Repeat("é", store.MaxKeyLen/2),                    // escapes to 3x its length
		strings.Repeat("Z/", store.MaxKeyLen/2-1) + "Z",           // deepest nesting
		strings.Repeat("é", 100) + "/" + strings.Repeat("é", 100), // chunked directory
	}
	for _, k := range keys {
		if err := store.ValidateKey(k); err != nil {
			t.Fatalf("test key invalid: %v", err)
		}
		if err := s.Put(ctx, id, k, []byte(k[:8])); err != nil {
			t.Fatalf("Put(%d-byte key): %v", len(k), err)
		}
	}
	got, err := s.List(ctx, id, "")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Sorted(slices.Values(keys))
	if !slices.Equal(got, want) {
		t.Fatalf("List = %d keys, want %d", len(got), len(want))
	}
	for _, k := range keys {
		if v, err := s.Get(ctx, id, k); err != nil || string(v) != k[:8] {
			t.Fatalf("Get(%d-byte key) = %q %v", len(k), v, err)
		}
		if err := s.Delete(ctx, id, k); err != nil {
			t.Fatal(err)
		}
	}
}

// tenantDirs puts an object for a and returns both tenants' directories.
func plantSetup(t *testing.T) (s *fsblob.Store, root string, a, b tenant.ID) {
	s, root = setup(t)
	a, b = tenant.NewID(), tenant.NewID()
	ctx := context.Background()
	for _, k := range []string{"docs/plan.md", "secret"} {
		if err := s.Put(ctx, a, k, []byte("A:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, b, "own", []byte("B")); err != nil {
		t.Fatal(err)
	}
	return s, root, a, b
}

func wantAIntact(t *testing.T, s *fsblob.Store, a tenant.ID) {
	t.Helper()
	ctx := context.Background()
	keys, err := s.List(ctx, a, "")
	if err != nil || !slices.Equal(keys, []string{"docs/plan.md", "secret"}) {
		t.Fatalf("A's keys = %q %v", keys, err)
	}
	for _, k := range keys {
		if v, err := s.Get(ctx, a, k); err != nil || string(v) != "A:"+k {
			t.Fatalf("A's %s = %q %v", k, v, err)
		}
	}
	// Nothing new appeared in A's directory.
}

func noLeak(t *testing.T, what string, v []byte, err error) {
	t.Helper()
	// Not ErrNotFound: the target exists, so only a refusal explains
	// the failure (a wrong link would pass vacuously).
	if err == nil || errors.Is(err, store.ErrNotFound) || bytes.HasPrefix(v, []byte("A:")) {
		t.Fatalf("%s: got %q, %v; want a refusal and no data", what, v, err)
	}
	t.Logf("%s: %v", what, err)
}

func TestSymlinkToOtherTenantNotFollowed(t *testing.T) {
	t.Parallel()
	for _, abs := range []bool{false, true} {
		t.Run(fmt.Sprintf("absolute=%v", abs), func(t *testing.T) {
			t.Parallel()
			s, root, a, b := plantSetup(t)
			ctx := context.Background()
			target := filepath.Join("..", string(a), "docs.d")
			fileTarget := filepath.Join("..", string(a), "secret.o")
			if abs {
				target = filepath.Join(root, string(a), "docs.d")
				fileTarget = filepath.Join(root, string(a), "secret.o")
			}
			bdir := filepath.Join(root, string(b))
			if err := os.Symlink(target, filepath.Join(bdir, "docs.d")); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(fileTarget, filepath.Join(bdir, "secret.o")); err != nil {
				t.Fatal(err)
			}

			v, err := s.Get(ctx, b, "docs/plan.md")
			noLeak(t, "Get through linked dir", v, err)
			v, err = s.Get(ctx, b, "secret")
			noLeak(t, "Get linked file", v, err)
			if keys, err := s.List(ctx, b, ""); err != nil || !slices.Equal(keys, []string{"own"}) {
				t.Fatalf("B List = %q %v, want [own]", keys, err)
			}
			if keys, err := s.List(ctx, b, "docs/"); err != nil || len(keys) != 0 {
				t.Fatalf("B List(docs/) = %q %v, want none", keys, err)
			}
			if err := s.Put(ctx, b, "docs/new.md", []byte("B")); err == nil {
				t.Fatal("Put through linked dir succeeded")
			}
			if err := s.Put(ctx, b, "docs/plan.md", []byte("B")); err == nil {
				t.Fatal("Put over A's object through linked dir succeeded")
			}
			if err := s.Delete(ctx, b, "docs/plan.md"); err == nil {
				t.Fatal("Delete through linked dir succeeded")
			}
			if err := s.Delete(ctx, b, "secret"); err == nil {
				t.Fatal("Delete of linked file succeeded")
			}
			wantAIntact(t, s, a)
			if _, err := os.Stat(filepath.Join(root, string(a), "docs.d", "new.md.o")); err == nil {
				t.Fatal("B's Put landed in A's directory")
			}
		})
	}
}

func TestSymlinkOutsideRootNotFollowed(t *testing.T) {
	t.Parallel()
	s, root, a, b := plantSetup(t)
	ctx := context.Background()
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "passwd.o"), []byte("A:outside"), 0o600)
	bdir := filepath.Join(root, string(b))
	os.Symlink("/etc", filepath.Join(bdir, "etc.d"))
	os.Symlink(outside, filepath.Join(bdir, "out.d"))
	os.Symlink("../../../../../../../../"+outside+"/passwd.o", filepath.Join(bdir, "passwd.o"))

	for _, k := range []string{"out/passwd", "passwd", "etc/passwd"} {
		v, err := s.Get(ctx, b, k)
		if err == nil || k != "etc/passwd" && errors.Is(err, store.ErrNotFound) || bytes.Contains(v, []byte("outside")) || bytes.Contains(v, []byte("root:")) {
			t.Fatalf("Get(%s) = %q %v, want refused", k, v, err)
		}
	}
	if err := s.Put(ctx, b, "out/x", []byte("B")); err == nil {
		t.Fatal("Put through link to outside dir succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "x.o")); err == nil {
		t.Fatal("Put wrote outside the root")
	}
	if err := s.Delete(ctx, b, "out/passwd"); err == nil {
		t.Fatal("Delete through link succeeded")
	}
	if _, err := os.Stat(filepath.Join(outside, "passwd.o")); err != nil {
		t.Fatal("Delete removed a file outside the root")
	}
	if keys, err := s.List(ctx, b, ""); err != nil || !slices.Equal(keys, []string{"own"}) {
		t.Fatalf("B List = %q %v, want [own]", keys, err)
	}
	wantAIntact(t, s, a)
}

func TestTenantDirSymlinkRefused(t *testing.T) {
	t.Parallel()
	s, root, a, _ := plantSetup(t)
	ctx := context.Background()
	c := tenant.NewID()
	if err := os.Symlink(string(a), filepath.Join(root, string(c))); err != nil {
		t.Fatal(err)
	}
	v, err := s.Get(ctx, c, "secret")
	noLeak(t, "Get via linked tenant dir", v, err)
	if !errors.Is(err, fsblob.ErrUnsafePath) {
		t.Errorf("err = %v, want ErrUnsafePath", err)
	}
	if _, err := s.List(ctx, c, ""); err == nil {
		t.Error("List via linked tenant dir succeeded")
	}
	if err := s.Put(ctx, c, "secret", []byte("C")); err == nil {
		t.Error("Put via linked tenant dir succeeded")
	}
	if err := s.Delete(ctx, c, "secret"); err == nil {
		t.Error("Delete via linked tenant dir succeeded")
	}
	wantAIntact(t, s, a)
}

// entries lists every file under dir (relative paths).
func entries(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

func TestFailedWriteLeavesNothing(t *testing.T) {
	t.Parallel()
	s, root := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "d/k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	before := entries(t, filepath.Join(root, string(id)))

	boom := errors.New("disk full")
	fsblob.SetBeforeRename(s, func() error { return boom })
	if err := s.Put(ctx, id, "d/k", []byte("new, never visible")); !errors.Is(err, boom) {
		t.Fatalf("Put: %v, want %v", err, boom)
	}
	if err := s.Put(ctx, id, "d/other", []byte("never visible")); !errors.Is(err, boom) {
		t.Fatalf("Put: %v, want %v", err, boom)
	}
	fsblob.SetBeforeRename(s, nil)
	if v, err := s.Get(ctx, id, "d/k"); err != nil || string(v) != "old" {
		t.Fatalf("after failed Put: %q %v, want old", v, err)
	}
	if _, err := s.Get(ctx, id, "d/other"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("failed Put of a new key left it: %v", err)
	}
	if after := entries(t, filepath.Join(root, string(id))); !slices.Equal(before, after) {
		t.Fatalf("failed Puts left files: before %q, after %q", before, after)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cctx, id, "d/k", []byte("cancelled")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx: %v", err)
	}
	if err := s.Put(cctx, tenant.NewID(), "k", []byte("cancelled")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with cancelled ctx: %v", err)
	}
	if after := entries(t, root); len(after) != len(before)+1 { // + the tenant dir itself
		t.Fatalf("cancelled Puts left files: %q", after)
	}
	if v, _ := s.Get(ctx, id, "d/k"); string(v) != "old" {
		t.Fatalf("cancelled Put changed the object: %q", v)
	}
}

func TestReadOnlyDirectory(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("permissions do not bind root; TestFailedWriteLeavesNothing covers failed writes")
	}
	s, root := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "d/k", []byte("old")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, string(id), "d.d")
	os.Chmod(dir, 0o500)
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if err := s.Put(ctx, id, "d/k", []byte("new")); err == nil {
		t.Fatal("Put into read-only directory succeeded")
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"k.o"}) {
		t.Fatalf("directory holds %q after failed Put", got)
	}
}

func TestDeletePrunesEmptyDirs(t *testing.T) {
	t.Parallel()
	s, root := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	for _, k := range []string{"a/b/c", "a/x"} {
		if err := s.Put(ctx, id, k, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, id, "a/b/c"); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, filepath.Join(root, string(id))); !slices.Equal(got, []string{"a.d", filepath.Join("a.d", "x.o")}) {
		t.Fatalf("after Delete: %q", got)
	}
	if err := s.Delete(ctx, id, "a/b/c"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if err := s.Delete(ctx, id, "a"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Delete of a directory-only key: %v", err)
	}
}

func TestIgnoresForeignFiles(t *testing.T) {
	t.Parallel()
	s, root := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "real", []byte("r")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, string(id))
	for _, name := range []string{"junk", "%61.o", "%zz.o", "UPPER.o", "tmp-123.t", "a%2fb.o", "%2e%2e.o"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o600)
	}
	os.Mkdir(filepath.Join(dir, "weird"), 0o700)
	os.WriteFile(filepath.Join(dir, "weird", "x.o"), []byte("x"), 0o600)
	os.Mkdir(filepath.Join(dir, "file.o"), 0o700) // a directory named like an object
	if keys, err := s.List(ctx, id, ""); err != nil || !slices.Equal(keys, []string{"real"}) {
		t.Fatalf("List = %q %v, want [real]", keys, err)
	}
	if _, err := s.Get(ctx, id, "file"); err == nil {
		t.Fatal("Get of a directory succeeded")
	}
}

func TestConcurrentPutDelete(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := range 8 {
		wg.Go(func() {
			for i := range 30 {
				// Everyone shares the directory "shared/deep/": Deletes
				// prune it while Puts need it.
				key := fmt.Sprintf("shared/deep/g%d-%d", g, i)
				if err := s.Put(ctx, id, key, []byte(key)); err != nil {
					errs <- err
					return
				}
				if v, err := s.Get(ctx, id, key); err != nil || string(v) != key {
					errs <- fmt.Errorf("Get %s: %q %v", key, v, err)
					return
				}
				if err := s.Delete(ctx, id, key); err != nil {
					errs <- fmt.Errorf("Delete %s: %v", key, err)
					return
				}
			}
		})
	}
	// Readers and writers of one key see whole values only.
	wg.Go(func() {
		for i := range 100 {
			v := bytes.Repeat([]byte{byte('a' + i%2)}, 4096)
			if err := s.Put(ctx, id, "one", v); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for range 100 {
			v, err := s.Get(ctx, id, "one")
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil || len(v) != 4096 || bytes.Count(v, v[:1]) != 4096 {
				errs <- fmt.Errorf("torn read: %d bytes, %v", len(v), err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if keys, _ := s.List(ctx, id, ""); !slices.Equal(keys, []string{"one"}) {
		t.Fatalf("List = %q", keys)
	}
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s, _ := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	s.Close()
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Put(ctx, id, "k", nil); !errors.Is(err, fsblob.ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if _, err := s.Get(ctx, id, "k"); !errors.Is(err, fsblob.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := s.List(ctx, id, ""); !errors.Is(err, fsblob.ErrClosed) {
		t.Fatalf("List after Close: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	if _, err := fsblob.Open("", nil); err == nil {
		t.Error("Open(\"\") succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o600)
	if _, err := fsblob.Open(f, nil); err == nil {
		t.Error("Open on a regular file succeeded")
	}
}

// FuzzKeyPath checks that every valid key maps to safe on-disk names and
// round-trips through Put, List and Get.
func FuzzKeyPath(f *testing.F) {
	for _, k := range append([]string{"a", "dir/a", "Plan Q3.md", "日本語 ✓/x", "%2e%2e/a", "a.d/b.o", "tmp-1.t", strings.Repeat("é", 150)}, storetest.LookalikeKeys...) {
		f.Add(k)
	}
	s, _ := setup(f)
	id := tenant.NewID()
	f.Fuzz(func(t *testing.T, key string) {
		if store.ValidateKey(key) != nil {
			return
		}
		for part := range strings.SplitSeq(fsblob.ObjectPath(key), "/") {
			if len(part) > 255 || part == "." || part == ".." || part == "" {
				t.Fatalf("key %q: unsafe component %q", key, part)
			}
			for i := 0; i < len(part); i++ {
				if c := part[i]; c >= utf8.RuneSelf || c >= 'A' && c <= 'Z' || c == '\\' || c == ':' {
					t.Fatalf("key %q: component %q has byte %q", key, part, c)
				}
			}
		}
		ctx := context.Background()
		if err := s.Put(ctx, id, key, []byte(key)); err != nil {
			t.Fatalf("Put(%q): %v", key, err)
		}
		defer s.Delete(ctx, id, key)
		if v, err := s.Get(ctx, id, key); err != nil || string(v) != key {
			t.Fatalf("Get(%q) = %q %v", key, v, err)
		}
		keys, err := s.List(ctx, id, "")
		if err != nil || !slices.Equal(keys, []string{key}) {
			t.Fatalf("List after Put(%q) = %q %v", key, keys, err)
		}
	})
}
