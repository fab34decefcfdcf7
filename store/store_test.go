package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func TestValidateKey(t *testing.T) {
	for _, key := range []string{"a", "a/b", "日本語", "a.b", "..a", "a..", "%2e%2e", strings.Repeat("k", store.MaxKeyLen)} {
		if err := store.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	for _, key := range storetest.LookalikeKeys {
		if err := store.ValidateKey(key); err != nil {
			t.Errorf("ValidateKey(%q) = %v, want nil", key, err)
		}
	}
	for _, key := range storetest.HostileKeys {
		if err := store.ValidateKey(key); !errors.Is(err, store.ErrInvalidKey) {
			t.Errorf("ValidateKey(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestAccessorsNeedTenantAndSet(t *testing.T) {
	ctx := context.Background()
	if _, err := store.Docs(ctx); !errors.Is(err, tenant.ErrNoTenant) {
		t.Fatalf("Docs without tenant: %v, want ErrNoTenant", err)
	}
	ctx = tenant.With(ctx, &tenant.Context{ID: tenant.NewID()})
	if _, err := store.Docs(ctx); !errors.Is(err, store.ErrNotConfigured) {
		t.Fatalf("Docs without set: %v, want ErrNotConfigured", err)
	}
	ctx = store.WithSet(ctx, &store.Set{})
	if _, err := store.KV(ctx); !errors.Is(err, store.ErrNotConfigured) {
		t.Fatalf("KV not configured: %v, want ErrNotConfigured", err)
	}
	if _, err := store.SQL(ctx); !errors.Is(err, store.ErrNotConfigured) {
		t.Fatalf("SQL not configured: %v, want ErrNotConfigured", err)
	}
}

// requestLayer is one context layer answering both the tenant's and the
// set's keys, as the server's request context does.
type requestLayer struct {
	context.Context
	tc  *tenant.Context
	set *store.Set
}

func (c requestLayer) Value(key any) any {
	switch key.(type) {
	case tenant.ContextKey:
		return c.tc
	case store.SetKey:
		return c.set
	}
	return c.Context.Value(key)
}

// nopBackend is a Backend that holds nothing.
type nopBackend struct{}

func (nopBackend) Get(context.Context, tenant.ID, string) ([]byte, error) {
	return nil, store.ErrNotFound
}
func (nopBackend) Put(context.Context, tenant.ID, string, []byte) error { return nil }
func (nopBackend) Delete(context.Context, tenant.ID, string) error      { return store.ErrNotFound }
func (nopBackend) List(context.Context, tenant.ID, string) ([]string, error) {
	return nil, nil
}
func (nopBackend) Close() error { return nil }

// The accessors find the set under SetKey in any layer that answers it.
func TestAccessorsSetKey(t *testing.T) {
	tc := &tenant.Context{ID: tenant.NewID()}
	ctx := requestLayer{context.Background(), tc, &store.Set{Docs: nopBackend{}}}
	docs, err := store.Docs(ctx)
	if err != nil {
		t.Fatalf("Docs through a layer answering SetKey: %v", err)
	}
	if docs.Tenant() != tc.ID {
		t.Fatalf("Docs bound to %q, want the layer's tenant %q", docs.Tenant(), tc.ID)
	}
	if _, err := store.Blobs(ctx); !errors.Is(err, store.ErrNotConfigured) {
		t.Fatalf("Blobs not in the layer's set: %v, want ErrNotConfigured", err)
	}
}

func FuzzValidateKey(f *testing.F) {
	for _, k := range storetest.HostileKeys {
		f.Add(k)
	}
	f.Add("a/b/c")
	f.Fuzz(func(t *testing.T, key string) {
		if store.ValidateKey(key) != nil {
			return
		}
		// An accepted key never escapes: no dot segments, not absolute,
		// no separators other than '/'.
		if strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || strings.Contains(key, "\x00") {
			t.Fatalf("accepted %q", key)
		}
		for _, seg := range strings.Split(key, "/") {
			if seg == "" || seg == "." || seg == ".." {
				t.Fatalf("accepted %q with segment %q", key, seg)
			}
		}
	})
}
