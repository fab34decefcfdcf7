package registry_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// sliceStore serves List from a sorted slice, handing out records whose
// strings, lists and maps are freshly allocated (as a database driver's
// decoding would), so memory measurements count them.
type sliceStore struct {
	registry.Store // unused methods
	recs           []*registry.Tenant
}

func (s *sliceStore) List(_ context.Context, after tenant.ID, limit int) ([]*registry.Tenant, error) {
	i, _ := slices.BinarySearchFunc(s.recs, after, func(t *registry.Tenant, id tenant.ID) int { return strings.Compare(string(t.ID), string(id)) })
	if i < len(s.recs) && s.recs[i].ID == after {
		i++
	}
	end := min(i+limit, len(s.recs))
	out := make([]*registry.Tenant, 0, end-i)
	for _, t := range s.recs[i:end] {
		c := t.Clone()
		c.ID = tenant.ID(strings.Clone(string(c.ID)))
		c.Issuer = strings.Clone(c.Issuer)
		c.ExternalID = strings.Clone(c.ExternalID)
		c.Name = strings.Clone(c.Name)
		for j, s := range c.AllowedTools {
			c.AllowedTools[j] = strings.Clone(s)
		}
		if c.Config != nil {
			c.Config = make(map[string]string, len(t.Config))
			for k, v := range t.Config {
				c.Config[strings.Clone(k)] = strings.Clone(v)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

const benchIssuer = "https://acme-prod.eu.auth0.com/"

// benchRecords returns n tenants as an Auth0 deployment would have them
// (org_ + 16 characters), "rich" ones with two allowed tools, a flag and
// a config entry.
func benchRecords(n int, rich bool) []*registry.Tenant {
	const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Now().UTC()
	recs := make([]*registry.Tenant, n)
	for i := range recs {
		b := []byte("org_0123456789abcdef")
		for j := 4; j < len(b); j++ {
			b[j] = alpha[rng.IntN(len(alpha))]
		}
		r := &registry.Tenant{
			ID: tenant.NewID(), Issuer: benchIssuer, ExternalID: string(b), Name: fmt.Sprintf("Customer %d Ltd", i),
			Status: registry.StatusActive, CreatedAt: now, UpdatedAt: now,
		}
		if rich {
			r.AllowedTools = []string{"documents.list", "documents.get"}
			r.Flags = map[string]bool{"beta": true}
			r.Config = map[string]string{"region": "eu-west-1"}
		}
		recs[i] = r
	}
	slices.SortFunc(recs, func(a, b *registry.Tenant) int { return strings.Compare(string(a.ID), string(b.ID)) })
	return recs
}

// filled returns a Registry whose cache holds all of recs (via Refresh).
func filled(b *testing.B, recs []*registry.Tenant) *registry.Registry {
	b.Helper()
	reg := registry.New(&sliceStore{recs: recs}, &registry.Options{MaxEntries: len(recs), TTL: time.Hour})
	n, err := reg.Refresh(context.Background())
	if err != nil || n != len(recs) {
		b.Fatalf("Refresh = %d, %v; want %d", n, err, len(recs))
	}
	return reg
}

// BenchmarkResolveHit resolves cached tenants (random keys, all CPUs):
// the per-request cost of the registry.
func BenchmarkResolveHit(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("tenants=%d", n), func(b *testing.B) {
			recs := benchRecords(n, false)
			reg := filled(b, recs)
			// Keys as a request carries them: strings of their own.
			keys := make([]string, n)
			for i, r := range recs {
				keys[i] = strings.Clone(r.ExternalID)
			}
			rand.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			ctx := context.Background()
			var seq atomic.Uint64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := int(seq.Add(1) * 7919)
				for pb.Next() {
					i++
					t, err := reg.Resolve(ctx, benchIssuer, keys[i%n])
					if err != nil || t == nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if st := reg.Stats(); st.Misses != 0 {
				b.Fatalf("%d misses; the benchmark must only hit", st.Misses)
			}
		})
	}
}

// BenchmarkResolveNegativeHit resolves an unregistered tenant that is
// remembered as such (a flood of tokens from an unknown organisation).
func BenchmarkResolveNegativeHit(b *testing.B) {
	reg := registry.New(registry.NewMemoryStore(), &registry.Options{NegativeTTL: time.Hour})
	ctx := context.Background()
	reg.Resolve(ctx, benchIssuer, "org_unknown")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := reg.Resolve(ctx, benchIssuer, "org_unknown"); err == nil {
				b.Error("resolved an unknown tenant")
				return
			}
		}
	})
}

// BenchmarkCacheMemory reports the heap held per cached tenant (record,
// its strings, lists and maps, and the cache's map entry), measured with
// runtime.MemStats around Refresh.
func BenchmarkCacheMemory(b *testing.B) {
	for _, tc := range []struct {
		name string
		rich bool
	}{{"bare", false}, {"rich", true}} {
		b.Run(tc.name, func(b *testing.B) {
			const n = 100_000
			recs := benchRecords(n, tc.rich)
			var perTenant float64
			for b.Loop() {
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				reg := filled(b, recs)
				runtime.GC()
				runtime.ReadMemStats(&after)
				perTenant = float64(after.HeapAlloc-before.HeapAlloc) / n
				runtime.KeepAlive(reg)
			}
			b.ReportMetric(perTenant, "B/tenant")
		})
	}
}

var sink int

// BenchmarkResolveMiss measures a miss answered by a fast store (the
// registry's own overhead around the store call).
func BenchmarkResolveMiss(b *testing.B) {
	mem := registry.NewMemoryStore()
	reg := registry.New(mem, &registry.Options{MaxEntries: 1000, TTL: time.Nanosecond})
	ctx := context.Background()
	if _, err := reg.Add(ctx, registry.Tenant{Issuer: benchIssuer, ExternalID: "org_1"}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		t, err := reg.Resolve(ctx, benchIssuer, "org_1")
		if err != nil {
			b.Fatal(err)
		}
		sink += len(t.Name)
	}
}
