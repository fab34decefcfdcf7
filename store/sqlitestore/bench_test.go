package sqlitestore_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tenantmcp/tenantmcp/store/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
)

func benchStore(b *testing.B, o *sqlitestore.Options) *sqlitestore.Store {
	b.Helper()
	s, err := sqlitestore.Open(b.TempDir(), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

var value1K = make([]byte, 1024)

// BenchmarkPut writes 1 KiB documents (new keys) to one tenant.
func BenchmarkPut(b *testing.B) {
	s := benchStore(b, nil)
	ctx := context.Background()
	id := tenant.NewID()
	b.SetBytes(int64(len(value1K)))
	i := 0
	for b.Loop() {
		if err := s.Put(ctx, id, "doc/"+strconv.Itoa(i), value1K); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGet reads 1 KiB documents from one tenant.
func BenchmarkGet(b *testing.B) {
	s := benchStore(b, nil)
	ctx := context.Background()
	id := tenant.NewID()
	for i := range 1000 {
		if err := s.Put(ctx, id, "doc/"+strconv.Itoa(i), value1K); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(value1K)))
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, id, "doc/"+strconv.Itoa(i%1000)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkGetParallel reads from 32 tenants on all CPUs (all handles
// cached).
func BenchmarkGetParallel(b *testing.B) {
	s := benchStore(b, nil)
	ctx := context.Background()
	ids := make([]tenant.ID, 32)
	for i := range ids {
		ids[i] = tenant.NewID()
		if err := s.Put(ctx, ids[i], "doc", value1K); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Int64
	b.SetBytes(int64(len(value1K)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := ids[n.Add(1)%int64(len(ids))]
			if _, err := s.Get(ctx, id, "doc"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetCacheMiss reads round-robin from 128 tenants with 16 open
// handles, so every Get opens a file (the worst case of the LRU).
func BenchmarkGetCacheMiss(b *testing.B) {
	s := benchStore(b, &sqlitestore.Options{MaxOpen: 16})
	ctx := context.Background()
	ids := make([]tenant.ID, 128)
	for i := range ids {
		ids[i] = tenant.NewID()
		if err := s.Put(ctx, ids[i], "doc", value1K); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, ids[i%len(ids)], "doc"); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
