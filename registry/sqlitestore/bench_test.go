package sqlitestore_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

// BenchmarkStoreCreate measures registering one tenant (one INSERT with
// WAL, synchronous=NORMAL): the provisioning cost in the registry.
func BenchmarkStoreCreate(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "registry.db"))
	ctx := context.Background()
	i := 0
	for b.Loop() {
		if err := s.Create(ctx, registrytest.Record("https://idp.example.com/", "org_"+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkStoreGet measures a cache miss's store lookup among 10,000
// tenants.
func BenchmarkStoreGet(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "registry.db"))
	ctx := context.Background()
	const n = 10000
	for i := range n {
		if err := s.Create(ctx, registrytest.Record("https://idp.example.com/", "org_"+strconv.Itoa(i))); err != nil {
			b.Fatal(err)
		}
	}
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, "https://idp.example.com/", "org_"+strconv.Itoa(i%n)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkChangeReachesWatcher measures how long an Update through one
// handle on the file (the CLI, say) takes to reach another handle's
// watcher: about half of Options.WatchInterval on average.
func BenchmarkChangeReachesWatcher(b *testing.B) {
	path := filepath.Join(b.TempDir(), "registry.db")
	registrytest.BenchWatcher(b, open(b, path), open(b, path))
}
