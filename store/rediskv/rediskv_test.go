package rediskv_test

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"testing"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/rediskv"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// setup returns a Store in a fresh test namespace and a raw client.
func setup(t *testing.T) (*rediskv.Store, *redis.Client, string) {
	t.Helper()
	addr, ns := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	s := rediskv.New(c, &rediskv.Options{Namespace: ns})
	t.Cleanup(func() { s.Close() })
	return s, c, ns
}

func TestContract(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Backend {
		s, _, _ := setup(t)
		return s
	})
}

func TestLayout(t *testing.T) {
	t.Parallel()
	s, c, ns := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "docs/plan.md", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Get(ctx, ns+string(id)+"/docs/plan.md").Result(); err != nil || v != "v" {
		t.Fatalf("raw GET = %q %v", v, err)
	}
}

func TestGlobMetacharacters(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	ctx := context.Background()
	id := tenant.NewID()
	keys := []string{"a", "ab", "a*", "a*b", "[ab]", "[ab]/x", "a?b", "axb", "b", "]", "^-", "x]y"}
	for _, k := range keys {
		if err := s.Put(ctx, id, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"a*", []string{"a*", "a*b"}},            // not a, ab, axb
		{"[ab]", []string{"[ab]", "[ab]/x"}},     // not a, b
		{"[ab]/", []string{"[ab]/x"}},            //
		{"a?", []string{"a?b"}},                  // not ab, a*, axb
		{"]", []string{"]"}},                     //
		{"x]", []string{"x]y"}},                  //
		{"^", []string{"^-"}},                    //
		{"*", nil},                               // matches nothing literally
		{"?", nil},                               //
		{"", slices.Sorted(slices.Values(keys))}, //
	} {
		got, err := s.List(ctx, id, tc.prefix)
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		if tc.want == nil {
			tc.want = []string{}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	for _, k := range keys {
		if v, err := s.Get(ctx, id, k); err != nil || string(v) != k {
			t.Errorf("Get(%q) = %q %v", k, v, err)
		}
	}
	// a\b is refused before it gets here.
	if err := store.ValidateKey(`a\b`); !errors.Is(err, store.ErrInvalidKey) {
		t.Fatalf("ValidateKey(a\\b) = %v", err)
	}
}

// A namespace with metacharacters must not match other namespaces.
func TestNamespaceEscaped(t *testing.T) {
	t.Parallel()
	addr, ns := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	ctx := context.Background()
	id := tenant.NewID()
	plain := rediskv.New(c, &rediskv.Options{Namespace: ns + "a:"})
	for _, meta := range []string{"?:", "*", "[a]:"} {
		if err := plain.Put(ctx, id, "k", []byte("plain")); err != nil {
			t.Fatal(err)
		}
		wild := rediskv.New(c, &rediskv.Options{Namespace: ns + meta})
		if keys, err := wild.List(ctx, id, ""); err != nil || len(keys) != 0 {
			t.Fatalf("namespace %q lists %q (%v) from namespace %q", ns+meta, keys, err, ns+"a:")
		}
		if _, err := wild.Get(ctx, id, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("namespace %q Get: %v", ns+meta, err)
		}
	}
}

func TestEscapeGlob(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"plain", "a*", "[ab]", "a?b", `a\b`, "]", "^-!", "*?[]\\", "日本語*"} {
		esc := rediskv.EscapeGlob(s)
		// path.Match has the same escaping rules as Redis glob for
		// these characters (outside '/').
		for _, other := range []string{s, s + "x", "a", "ab", "axb", "b", "", "plain"} {
			ok, err := path.Match(esc, other)
			if err != nil {
				t.Fatalf("pattern %q: %v", esc, err)
			}
			if ok != (other == s) {
				t.Errorf("pattern %q (from %q) matches %q = %v", esc, s, other, ok)
			}
		}
	}
}

func TestListManyKeys(t *testing.T) {
	t.Parallel()
	s, c, ns := setup(t)
	ctx := context.Background()
	a, b := tenant.NewID(), tenant.NewID()
	const n = 2500 // several SCAN rounds
	pipe := c.Pipeline()
	var want []string
	for i := range n {
		k := fmt.Sprintf("k/%04d", i)
		want = append(want, k)
		pipe.Set(ctx, ns+string(a)+"/"+k, "v", 0)
		pipe.Set(ctx, ns+string(b)+"/"+k, "v", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := s.List(ctx, a, "k/")
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("List: %d keys, %v; want %d", len(got), err, n)
	}
}

func TestOpen(t *testing.T) {
	t.Parallel()
	addr, ns := testenv.Redis(t)
	s, err := rediskv.Open("redis://"+addr+"/0", &rediskv.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Get(ctx, id, "k"); !errors.Is(err, rediskv.ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if _, err := rediskv.Open("not a url", nil); err == nil {
		t.Error("Open(bad url) succeeded")
	}
	if _, err := rediskv.Open("redis://127.0.0.1:1/0", nil); err == nil {
		t.Error("Open(unreachable) succeeded")
	}
}

func TestDefaultNamespace(t *testing.T) {
	t.Parallel()
	addr, _ := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	s := rediskv.New(c, nil)
	ctx := context.Background()
	id := tenant.NewID()
	if err := s.Put(ctx, id, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	defer s.Delete(ctx, id, "k")
	if n, err := c.Exists(ctx, "tenantmcp:"+string(id)+"/k").Result(); err != nil || n != 1 {
		t.Fatalf("key not under the default namespace: %d %v", n, err)
	}
}

// FuzzEscapeGlob checks that an escaped prefix matches itself and nothing
// else (path.Match follows the same escaping rules as Redis for these
// characters).
func FuzzEscapeGlob(f *testing.F) {
	for _, s := range []string{"a*", "[ab]", "a?b", `\`, "]", "[", "[!a]", "^-", "x/y*"} {
		f.Add(s, "a")
	}
	f.Fuzz(func(t *testing.T, s, other string) {
		if !utf8.ValidString(s) || !utf8.ValidString(other) {
			return
		}
		esc := rediskv.EscapeGlob(s)
		ok, err := path.Match(esc, s)
		if err != nil || !ok {
			t.Fatalf("escaped %q = %q does not match itself: %v", s, esc, err)
		}
		if ok, _ := path.Match(esc, other); ok && other != s {
			t.Fatalf("escaped %q = %q also matches %q", s, esc, other)
		}
	})
}
