// Package archivetest is the contract suite of archive.Store: every
// implementation runs RunStore in its tests.
package archivetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/tenantmcp/tenantmcp/lifecycle/archive"
)

// RunStore checks that the stores newStore returns behave as
// archive.Store says: round trips of empty, small and multi-megabyte
// archives from plain (not seekable) readers, atomic replacement, a
// failed or cancelled Put leaving the old archive, ErrNotFound, listing by
// prefix, and refusal of hostile names. Each call of newStore must return
// an empty store.
func RunStore(t *testing.T, newStore func(t *testing.T) archive.Store) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("Replace", func(t *testing.T) { testReplace(t, newStore(t)) })
	t.Run("FailedPut", func(t *testing.T) { testFailedPut(t, newStore(t)) })
	t.Run("NotFound", func(t *testing.T) { testNotFound(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testList(t, newStore(t)) })
	t.Run("HostileNames", func(t *testing.T) { testHostileNames(t, newStore(t)) })
}

// Get reads the archive under name.
func Get(t *testing.T, s archive.Store, name string) []byte {
	t.Helper()
	rc, err := s.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", name, err)
	}
	return b
}

// Put stores b under name, from a reader that is neither a Seeker nor a
// ReaderAt.
func Put(t *testing.T, s archive.Store, name string, b []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, struct{ io.Reader }{bytes.NewReader(b)}); err != nil {
		t.Fatalf("Put(%q): %v", name, err)
	}
}

func wantList(t *testing.T, s archive.Store, prefix string, want ...string) {
	t.Helper()
	got, err := s.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if want == nil {
		want = []string{}
	}
	if got == nil || !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
	}
}

func testRoundTrip(t *testing.T, s archive.Store) {
	big := bytes.Repeat([]byte("0123456789abcdef\x00\xff"), 300_000) // 5.4 MB
	cases := map[string][]byte{
		"empty.tar.gz":                          {},
		"t1/20261127T100000Z.tar.gz":            []byte("small"),
		"t1/20261128T100000Z.tar.gz":            big,
		"a/b/c/d/" + strings.Repeat("x", 255):   []byte("deep"),
		"Upper.Case_and-dash/v1.2.3.tar.gz":     []byte("mixed"),
		"t2/" + strings.Repeat("n", 200) + ".x": []byte("long"),
	}
	for name, b := range cases {
		Put(t, s, name, b)
	}
	for name, b := range cases {
		if got := Get(t, s, name); !bytes.Equal(got, b) {
			t.Errorf("Get(%q): %d bytes, want %d", name, len(got), len(b))
		}
	}
	want := slices.Sorted(func(yield func(string) bool) {
		for name := range cases {
			if !yield(name) {
				return
			}
		}
	})
	wantList(t, s, "", want...)
	// A seekable body (what the lifecycle passes: a file) works as well,
	// from wherever it stands.
	r := bytes.NewReader([]byte("skip:seekable"))
	r.Seek(5, io.SeekStart)
	if err := s.Put(context.Background(), "t3/seek", r); err != nil {
		t.Fatal(err)
	}
	if got := Get(t, s, "t3/seek"); string(got) != "seekable" {
		t.Fatalf("Get after a Put from offset 5 = %q, want %q", got, "seekable")
	}
	for name := range cases {
		if err := s.Delete(context.Background(), name); err != nil {
			t.Fatalf("Delete(%q): %v", name, err)
		}
	}
	wantList(t, s, "", "t3/seek")
}

func testReplace(t *testing.T, s archive.Store) {
	Put(t, s, "t/a", []byte("old"))
	Put(t, s, "t/a", []byte("new, and longer"))
	if got := Get(t, s, "t/a"); string(got) != "new, and longer" {
		t.Fatalf("after replacing: %q", got)
	}
	wantList(t, s, "", "t/a")
}

func testFailedPut(t *testing.T, s archive.Store) {
	ctx := context.Background()
	Put(t, s, "t/a", []byte("old"))
	boom := errors.New("disk on fire")
	half := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("x"), 100_000)), iotest.ErrReader(boom))
	if err := s.Put(ctx, "t/a", half); !errors.Is(err, boom) {
		t.Fatalf("Put from a failing reader: %v, want %v", err, boom)
	}
	if err := s.Put(ctx, "t/b", iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Fatalf("Put of a new name from a failing reader: %v, want %v", err, boom)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cancelled, "t/a", strings.NewReader("cancelled")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a cancelled context: %v", err)
	}
	if got := Get(t, s, "t/a"); string(got) != "old" {
		t.Fatalf("after failed Puts: %q, want the old archive", got)
	}
	wantList(t, s, "", "t/a")
}

func testNotFound(t *testing.T, s archive.Store) {
	ctx := context.Background()
	if _, err := s.Open(ctx, "t/missing"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Open of a missing archive: %v", err)
	}
	if err := s.Delete(ctx, "t/missing"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Delete of a missing archive: %v", err)
	}
	Put(t, s, "t/a", []byte("a"))
	for _, name := range []string{"t", "t/a/b"} { // a "directory", below an archive
		if _, err := s.Open(ctx, name); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Open(%q): %v", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("Delete(%q): %v", name, err)
		}
	}
	if err := s.Delete(ctx, "t/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(ctx, "t/a"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("Open after Delete: %v", err)
	}
	if err := s.Delete(ctx, "t/a"); !errors.Is(err, archive.ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	wantList(t, s, "")
	wantList(t, s, "t/")
}

func testList(t *testing.T, s archive.Store) {
	names := []string{"a", "ab/1", "ab/2", "abc", "b/a/1", "b/a/2", "b/b", "t1/x", "t10/x"}
	for _, n := range names {
		Put(t, s, n, []byte(n))
	}
	wantList(t, s, "", names...)
	wantList(t, s, "a", "a", "ab/1", "ab/2", "abc")
	wantList(t, s, "ab", "ab/1", "ab/2", "abc")
	wantList(t, s, "ab/", "ab/1", "ab/2")
	wantList(t, s, "b/a", "b/a/1", "b/a/2")
	wantList(t, s, "b/a/", "b/a/1", "b/a/2")
	wantList(t, s, "t1/", "t1/x")
	wantList(t, s, "t1", "t1/x", "t10/x")
	wantList(t, s, "zz/")
	wantList(t, s, "ab/1/")
}

// HostileNames are names every Store refuses with archive.ErrInvalidName.
var HostileNames = []string{
	"", "/abs", "a//b", "a/", "..", "../x", "a/../b", "./a", "a/./b", ".hidden", "a/.tmp-1",
	`a\b`, "a\x00b", "a\nb", "a b", "a:b", "é", "a/\u2215b", strings.Repeat("x", 256),
	strings.Repeat("abcdefgh/", 114) + "x", // 1027 bytes
}

func testHostileNames(t *testing.T, s archive.Store) {
	ctx := context.Background()
	Put(t, s, "t/a", []byte("a"))
	for _, name := range HostileNames {
		if err := s.Put(ctx, name, strings.NewReader("x")); !errors.Is(err, archive.ErrInvalidName) {
			t.Errorf("Put(%q): %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Open(ctx, name); !errors.Is(err, archive.ErrInvalidName) {
			t.Errorf("Open(%q): %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, archive.ErrInvalidName) {
			t.Errorf("Delete(%q): %v, want ErrInvalidName", name, err)
		}
	}
	for _, prefix := range []string{"/", "..", "../", "a//", ".x", "a\x00", "a b"} {
		if _, err := s.List(ctx, prefix); !errors.Is(err, archive.ErrInvalidName) {
			t.Errorf("List(%q): %v, want ErrInvalidName", prefix, err)
		}
	}
	wantList(t, s, "", "t/a")
}
