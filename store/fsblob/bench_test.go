package fsblob_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/tenantmcp/tenantmcp/tenant"
)

var value1K = make([]byte, 1024)

// BenchmarkPut writes 1 KiB objects (new keys, one directory) with the
// full durability path: temp file, fsync, rename, directory fsync.
func BenchmarkPut(b *testing.B) {
	s, _ := setup(b)
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

// BenchmarkGet reads 1 KiB objects.
func BenchmarkGet(b *testing.B) {
	s, _ := setup(b)
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

// BenchmarkGetParallel reads from 32 tenants on all CPUs.
func BenchmarkGetParallel(b *testing.B) {
	s, _ := setup(b)
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
			if _, err := s.Get(ctx, ids[n.Add(1)%int64(len(ids))], "doc"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkList lists a 1000-object directory.
func BenchmarkList(b *testing.B) {
	s, _ := setup(b)
	ctx := context.Background()
	id := tenant.NewID()
	for i := range 1000 {
		if err := s.Put(ctx, id, "doc/"+strconv.Itoa(i), nil); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		if keys, err := s.List(ctx, id, "doc/"); err != nil || len(keys) != 1000 {
			b.Fatal(len(keys), err)
		}
	}
}
