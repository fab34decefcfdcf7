package pgstore_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/registry/pgstore"
	"github.com/tenantmcp/tenantmcp/registry/registrytest"
)

func benchStore(b *testing.B) *pgstore.Store { return benchStoreOn(b, testenv.Postgres(b)) }

func benchStoreOn(b *testing.B, dsn string) *pgstore.Store {
	s, err := pgstore.Open(context.Background(), dsn, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkStoreCreate measures registering one tenant (one INSERT,
// committed): the provisioning cost in the registry.
func BenchmarkStoreCreate(b *testing.B) {
	s := benchStore(b)
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
	s := benchStore(b)
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
// replica's store takes to reach another replica's watcher (one UPDATE
// with its NOTIFY, committed, then delivered): how soon every replica
// drops the stale record.
func BenchmarkChangeReachesWatcher(b *testing.B) {
	dsn := testenv.Postgres(b)
	registrytest.BenchWatcher(b, benchStoreOn(b, dsn), benchStoreOn(b, dsn))
}
