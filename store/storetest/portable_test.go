package storetest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/tenantmcp/tenantmcp/store"
	"github.com/tenantmcp/tenantmcp/store/storetest"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// memory is a minimal correct store.Backend and store.Portable: the
// suite's own reference, so a failure in a real backend is the backend's.
type memory struct {
	mu sync.Mutex
	t  map[tenant.ID]map[string][]byte
}

func (m *memory) Get(_ context.Context, id tenant.ID, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.t[id][key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return slices.Clone(v), nil
}

func (m *memory) Put(_ context.Context, id tenant.ID, key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.t[id] == nil {
		m.t[id] = map[string][]byte{}
	}
	m.t[id][key] = append([]byte{}, value...)
	return nil
}

func (m *memory) Delete(_ context.Context, id tenant.ID, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.t[id][key]; !ok {
		return store.ErrNotFound
	}
	delete(m.t[id], key)
	return nil
}

func (m *memory) List(_ context.Context, id tenant.ID, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := []string{}
	for k := range m.t[id] {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

func (m *memory) Close() error { return nil }

func (m *memory) Export(ctx context.Context, id tenant.ID, w store.PartWriter) error {
	m.mu.Lock()
	snap := map[string][]byte{}
	for k, v := range m.t[id] {
		snap[k] = v
	}
	m.mu.Unlock()
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range snap {
			if !yield(k) {
				return
			}
		}
	}) {
		pw, err := w.Create("docs/" + k)
		if err != nil {
			return err
		}
		if _, err := pw.Write(snap[k]); err != nil {
			pw.Close()
			return err
		}
		if err := pw.Close(); err != nil {
			return err
		}
	}
	return nil
}

func (m *memory) Import(ctx context.Context, id tenant.ID, r store.PartReader) error {
	m.mu.Lock()
	n := len(m.t[id])
	m.mu.Unlock()
	if n > 0 {
		return store.ErrNotEmpty
	}
	staged := map[string][]byte{}
	for _, name := range r.Names() {
		key, ok := strings.CutPrefix(name, "docs/")
		if !ok || store.ValidateKey(key) != nil {
			return fmt.Errorf("memory: unknown part %q", name)
		}
		rc, err := r.Open(name)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("memory: read part %q: %w", name, err)
		}
		staged[key] = b
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.t[id]) > 0 {
		return store.ErrNotEmpty
	}
	m.t[id] = staged
	return nil
}

func (m *memory) Purge(_ context.Context, id tenant.ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.t, id)
	return nil
}

func TestRunPortableOnReference(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return &memory{t: map[tenant.ID]map[string][]byte{}} })
	storetest.RunPortable(t, func(t *testing.T) (store.Backend, store.Portable) {
		m := &memory{t: map[tenant.ID]map[string][]byte{}}
		return m, m
	})
}

func TestMemoryParts(t *testing.T) {
	m := &storetest.MemoryParts{}
	w, err := m.Create("a/b.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("c"); err == nil {
		t.Fatal("Create while a part is open succeeded")
	}
	io.WriteString(w, "hello ")
	io.WriteString(w, "world")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := w.Close(); err == nil {
		t.Fatal("second Close succeeded")
	}
	if _, err := m.Create("a/b.bin"); err == nil {
		t.Fatal("duplicate Create succeeded")
	}
	for _, bad := range []string{"", "/a", "a/", "a//b", "./a", "a/../b", ".."} {
		if _, err := m.Create(bad); err == nil {
			t.Errorf("Create(%q) succeeded", bad)
		}
	}
	w, _ = m.Create("empty")
	w.Close()
	if got := m.Names(); !slices.Equal(got, []string{"a/b.bin", "empty"}) {
		t.Fatalf("Names = %q", got)
	}
	rc, err := m.Open("a/b.bin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "hello world" {
		t.Fatalf("part = %q", b)
	}
	if _, err := m.Open("missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open(missing): err = %v, want fs.ErrNotExist", err)
	}
}

func TestDigest(t *testing.T) {
	ctx := context.Background()
	m := &memory{t: map[tenant.ID]map[string][]byte{}}
	a, b := tenant.NewID(), tenant.NewID()
	m.Put(ctx, a, "ab", []byte("c"))
	m.Put(ctx, b, "a", []byte("bc")) // same concatenation, other split
	if storetest.Digest(t, m, a) == storetest.Digest(t, m, b) {
		t.Fatal("Digest does not separate key from value")
	}
	before := storetest.Digest(t, m, b)
	m.Put(ctx, b, "a", []byte("bd"))
	if storetest.Digest(t, m, b) == before {
		t.Fatal("Digest does not see a changed value")
	}
	m.Put(ctx, b, "a", []byte("bc"))
	if storetest.Digest(t, m, b) != before {
		t.Fatal("Digest is not stable")
	}
}
