// Package storetest is the contract suite every store.Backend must pass:
// basic behaviour, and above all that tenant B can never read, list,
// overwrite or delete tenant A's data, whatever keys it tries.
//
// A backend's test calls it with a constructor:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Backend { return newBackend(t) })
//	}
//
// RunPortable is the contract of store.Portable (export, import, purge),
// and MemoryParts an in-memory store.PartWriter and store.PartReader for
// it and for other tests; Digest fingerprints one tenant's data.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// HostileKeys are keys a malicious tenant might try to escape its
// namespace with. Each must be refused with store.ErrInvalidKey.
var HostileKeys = []string{
	"../a/x", "..", ".", "a/../../b", "./a", "a/./b", "a//b", "/etc/passwd", "/a",
	"a\\..\\b", "..\\a", "a\x00b", "a\nb", "a\u202eb", "a\u2215..\u2215b", "a\uff0fb",
	strings.Repeat("k", store.MaxKeyLen+1), "a/", "\xff\xfe",
}

// LookalikeKeys look like escapes but are ordinary names (percent-encoding
// is not decoded; look-alike dots are not dots). They are accepted and must
// stay inside the caller's own namespace.
var LookalikeKeys = []string{"%2e%2e/a/x", "%2e%2e%2fa", "\u2024\u2024/a", "\uff0e\uff0e/a", "..a", "a.."}

// Run runs the contract suite. newBackend must return a fresh, empty
// backend; the suite closes it.
func Run(t *testing.T, newBackend func(t *testing.T) store.Backend) {
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newBackend(t)) })
	t.Run("Isolation", func(t *testing.T) { testIsolation(t, newBackend(t)) })
	t.Run("HostileKeys", func(t *testing.T) { testHostileKeys(t, newBackend(t)) })
	t.Run("TenantIDs", func(t *testing.T) { testTenantIDs(t, newBackend(t)) })
	t.Run("ListPrefix", func(t *testing.T) { testListPrefix(t, newBackend(t)) })
}

func buckets(t *testing.T, b store.Backend, n int) []*store.Bucket {
	t.Helper()
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close backend: %v", err)
		}
	})
	var out []*store.Bucket
	for range n {
		k, err := store.NewBucket(b, tenant.NewID())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, k)
	}
	return out
}

func mustPut(t *testing.T, k *store.Bucket, key, val string) {
	t.Helper()
	if err := k.Put(context.Background(), key, []byte(val)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func wantGet(t *testing.T, k *store.Bucket, key, want string) {
	t.Helper()
	got, err := k.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if string(got) != want {
		t.Fatalf("Get(%q) = %q, want %q", key, got, want)
	}
}

func wantNotFound(t *testing.T, err error, what string) {
	t.Helper()
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("%s: err = %v, want store.ErrNotFound", what, err)
	}
}

func wantList(t *testing.T, k *store.Bucket, prefix string, want ...string) {
	t.Helper()
	got, err := k.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("List(%q) = %q, want %q", prefix, got, want)
	}
}

func testRoundTrip(t *testing.T, b store.Backend) {
	ctx := context.Background()
	k := buckets(t, b, 1)[0]
	_, err := k.Get(ctx, "missing")
	wantNotFound(t, err, "Get missing")
	wantNotFound(t, k.Delete(ctx, "missing"), "Delete missing")
	wantList(t, k, "")

	mustPut(t, k, "a", "1")
	wantGet(t, k, "a", "1")
	mustPut(t, k, "a", "2") // overwrite
	wantGet(t, k, "a", "2")

	bin := []byte{0, 1, 2, 255, '\n', 0}
	if err := k.Put(ctx, "bin", bin); err != nil {
		t.Fatal(err)
	}
	got, err := k.Get(ctx, "bin")
	if err != nil || !bytes.Equal(got, bin) {
		t.Fatalf("binary round trip: %v %v", got, err)
	}
	mustPut(t, k, "empty", "")
	wantGet(t, k, "empty", "")
	mustPut(t, k, "unicode/日本語 ✓", "ok")
	wantGet(t, k, "unicode/日本語 ✓", "ok")
	mustPut(t, k, "dir/a", "x")
	mustPut(t, k, "dir", "file and prefix at once")
	wantGet(t, k, "dir", "file and prefix at once")
	wantGet(t, k, "dir/a", "x")

	if err := k.Delete(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	_, err = k.Get(ctx, "a")
	wantNotFound(t, err, "Get after Delete")
	wantList(t, k, "", "bin", "dir", "dir/a", "empty", "unicode/日本語 ✓")

	if err := k.Put(ctx, "big", make([]byte, store.MaxValueSize+1)); !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("oversized Put: err = %v, want ErrTooLarge", err)
	}
	_, err = k.Get(ctx, "big")
	wantNotFound(t, err, "Get after refused Put")
}

func testIsolation(t *testing.T, b store.Backend) {
	ctx := context.Background()
	ks := buckets(t, b, 2)
	a, bb := ks[0], ks[1]
	mustPut(t, a, "secret.txt", "tenant-a-secret")
	mustPut(t, a, "docs/plan.md", "a-plan")

	// B sees nothing of A's.
	_, err := bb.Get(ctx, "secret.txt")
	wantNotFound(t, err, "B Get A's key")
	wantList(t, bb, "")
	wantList(t, bb, "docs/")
	wantNotFound(t, bb.Delete(ctx, "secret.txt"), "B Delete A's key")
	wantGet(t, a, "secret.txt", "tenant-a-secret")

	// B writing the same key creates its own object and leaves A's alone.
	mustPut(t, bb, "secret.txt", "tenant-b-secret")
	wantGet(t, a, "secret.txt", "tenant-a-secret")
	wantGet(t, bb, "secret.txt", "tenant-b-secret")
	wantList(t, a, "", "docs/plan.md", "secret.txt")
	wantList(t, bb, "", "secret.txt")

	// B deleting its own copy leaves A's.
	if err := bb.Delete(ctx, "secret.txt"); err != nil {
		t.Fatal(err)
	}
	wantGet(t, a, "secret.txt", "tenant-a-secret")

	// Keys that name A's id from B's side stay in B's namespace.
	for _, key := range []string{a.Tenant().String(), a.Tenant().String() + "/secret.txt", "x/" + a.Tenant().String() + "/secret.txt"} {
		if _, err := bb.Get(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("B Get(%q): err = %v, want ErrNotFound", key, err)
		}
	}
	wantList(t, bb, a.Tenant().String())
	wantList(t, bb, a.Tenant().String()+"/")
}

func testHostileKeys(t *testing.T, b store.Backend) {
	ctx := context.Background()
	ks := buckets(t, b, 2)
	a, bb := ks[0], ks[1]
	mustPut(t, a, "a/x", "a-x")
	mustPut(t, a, "x", "a-top")
	for _, key := range HostileKeys {
		_, getErr := bb.Get(ctx, key)
		putErr := bb.Put(ctx, key, []byte("evil"))
		delErr := bb.Delete(ctx, key)
		for what, err := range map[string]error{"Get": getErr, "Put": putErr, "Delete": delErr} {
			if !errors.Is(err, store.ErrInvalidKey) {
				t.Errorf("%s(%q): err = %v, want ErrInvalidKey", what, key, err)
			}
		}
		if strings.HasSuffix(key, "/") {
			continue // a trailing slash is fine in a list prefix
		}
		if _, err := bb.List(ctx, key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("List(%q): err = %v, want ErrInvalidKey", key, err)
		}
	}
	// Nothing changed for A, and B still has nothing.
	wantGet(t, a, "a/x", "a-x")
	wantGet(t, a, "x", "a-top")
	wantList(t, a, "", "a/x", "x")
	wantList(t, bb, "")

	// Look-alikes are plain names in B's own namespace.
	for _, key := range LookalikeKeys {
		mustPut(t, bb, key, "b:"+key)
	}
	for _, key := range LookalikeKeys {
		wantGet(t, bb, key, "b:"+key)
		if err := bb.Delete(ctx, key); err != nil {
			t.Fatalf("B Delete(%q): %v", key, err)
		}
	}
	wantGet(t, a, "a/x", "a-x")
	wantGet(t, a, "x", "a-top")
	wantList(t, a, "", "a/x", "x")
	wantList(t, bb, "")
}

// testTenantIDs checks that hostile external tenant names, once mapped to
// internal ids, stay apart, and that malformed ids never reach a backend.
func testTenantIDs(t *testing.T, b store.Backend) {
	t.Cleanup(func() { b.Close() })
	for _, bad := range []tenant.ID{"", "a/b", "a", "a_", "A", "tenant-a", "tenanta", "../t2ah3htpjvblvvvgzhpo", "T2AH3HTPJVBLVVVGZHPOV", "t2ah3htpjvblvvvgzhpov/"} {
		if _, err := store.NewBucket(b, bad); !errors.Is(err, tenant.ErrInvalidID) {
			t.Errorf("NewBucket(%q): err = %v, want tenant.ErrInvalidID", bad, err)
		}
	}
	// External ids that a naive sanitiser would merge get distinct
	// internal ids from the registry; simulate that here.
	names := []string{"a/b", "a", "a_", "A", "tenant-a", "tenanta"}
	ids := map[string]*store.Bucket{}
	for _, n := range names {
		k, err := store.NewBucket(b, tenant.NewID())
		if err != nil {
			t.Fatal(err)
		}
		ids[n] = k
		mustPut(t, k, "owner", n)
	}
	for _, n := range names {
		wantGet(t, ids[n], "owner", n)
		wantList(t, ids[n], "", "owner")
	}
}

func testListPrefix(t *testing.T, b store.Backend) {
	k := buckets(t, b, 1)[0]
	for _, key := range []string{"a", "ab", "a/b", "a/b/c", "b", "ba/c"} {
		mustPut(t, k, key, key)
	}
	wantList(t, k, "", "a", "a/b", "a/b/c", "ab", "b", "ba/c")
	wantList(t, k, "a", "a", "a/b", "a/b/c", "ab")
	wantList(t, k, "a/", "a/b", "a/b/c")
	wantList(t, k, "a/b/", "a/b/c")
	wantList(t, k, "b", "b", "ba/c")
	wantList(t, k, "zzz")
}
