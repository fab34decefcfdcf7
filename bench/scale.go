package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tenantmcp/tenantmcp/auth"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	regsqlite "github.com/tenantmcp/tenantmcp/registry/sqlitestore"
	"github.com/tenantmcp/tenantmcp/tenant"
)

// Scale are the registry figures at many tenants (SQLite store, the
// embedded default).
type Scale struct {
	Tenants int `json:"tenants"`
	// Provisioning: Registry.Add, one at a time.
	AddMeanUs  float64 `json:"add_mean_us"`
	AddP99Us   float64 `json:"add_p99_us"`
	AddTotalS  float64 `json:"add_total_s"`
	StoreBytes int64   `json:"store_file_bytes"`
	// A Resolve that reaches the store (cold cache), one at a time.
	MissMeanUs float64 `json:"resolve_miss_mean_us"`
	// Memory of the cache holding every tenant, per tenant.
	BytesPerCachedTenant float64 `json:"bytes_per_cached_tenant"`
	// Resolve hits over all tenants in random order, 2 goroutines, cache
	// sized to hold them all.
	HitNs         float64 `json:"resolve_hit_ns"`
	HitAllocsPer  float64 `json:"resolve_hit_allocs"`
	HitsPerSecond float64 `json:"resolve_hits_per_s"`
	// The same with the default cache size (10,000) over all tenants in
	// random order: most lookups miss.
	DefaultCacheNs      float64 `json:"default_cache_resolve_ns"`
	DefaultCacheHitRate float64 `json:"default_cache_hit_rate"`
	// The other per-tenant state of the request path, measured with
	// PerTenantSample tenants: a verified token in the token cache (one
	// token per tenant) and a key in the in-memory rate limiter.
	PerTenantSample     int     `json:"per_tenant_sample"`
	BytesPerCachedToken float64 `json:"bytes_per_cached_token"`
	BytesPerLimiterKey  float64 `json:"bytes_per_limiter_key"`
}

func (s *Scale) write(w io.Writer) {
	fmt.Fprintf(w, "registry at %d tenants (SQLite store):\n", s.Tenants)
	fmt.Fprintf(w, "  provisioning (Registry.Add, one at a time): mean %.0f µs, p99 %.0f µs, total %.1f s; store file %.1f MiB\n",
		s.AddMeanUs, s.AddP99Us, s.AddTotalS, float64(s.StoreBytes)/(1<<20))
	fmt.Fprintf(w, "  Resolve miss (store lookup): mean %.0f µs\n", s.MissMeanUs)
	fmt.Fprintf(w, "  Resolve hit, all %d cached: %.0f ns/op (%.0f/s on 2 goroutines), %.1f allocs/op; %.0f bytes per cached tenant\n",
		s.Tenants, s.HitNs, s.HitsPerSecond, s.HitAllocsPer, s.BytesPerCachedTenant)
	fmt.Fprintf(w, "  Resolve with the default cache (%d entries), uniform over all tenants: %.0f ns/op, hit rate %.1f%%\n",
		registry.DefaultMaxEntries, s.DefaultCacheNs, s.DefaultCacheHitRate*100)
	fmt.Fprintf(w, "  other per-tenant memory (%d tenants): %.0f bytes per verified token in the token cache, %.0f bytes per rate-limiter key\n",
		s.PerTenantSample, s.BytesPerCachedToken, s.BytesPerLimiterKey)
}

func measureScale(ctx context.Context, dir string, n int, logf func(string, ...any)) (*Scale, error) {
	path := filepath.Join(dir, "scale-registry.db")
	st, err := regsqlite.Open(path, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	const issuer = "https://idp.example.com/"
	ext := make([]string, n)
	for i := range ext {
		ext[i] = fmt.Sprintf("org_%08d", i)
	}
	s := &Scale{Tenants: n}

	// Provisioning.
	reg := registry.New(st, &registry.Options{MaxEntries: n, TTL: time.Hour})
	lat := make([]time.Duration, n)
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		if _, err := reg.Add(ctx, registry.Tenant{Issuer: issuer, ExternalID: ext[i], Name: "Org " + ext[i], Status: registry.StatusActive}); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
		if (i+1)%20000 == 0 {
			logf("  registered %d", i+1)
		}
	}
	s.AddTotalS = time.Since(start).Seconds()
	slices.Sort(lat)
	s.AddMeanUs = s.AddTotalS * 1e6 / float64(n)
	s.AddP99Us = float64(lat[n*99/100]) / 1e3
	if fi, err := os.Stat(path); err == nil {
		s.StoreBytes = fi.Size()
	}
	for _, suffix := range []string{"-wal"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			s.StoreBytes += fi.Size()
		}
	}

	// Cold cache: every Resolve reaches the store; the heap growth is the
	// cache.
	reg = registry.New(st, &registry.Options{MaxEntries: n, TTL: time.Hour})
	order := rand.Perm(n)
	heap0 := heapInUse()
	start = time.Now()
	for _, i := range order {
		if _, err := reg.Resolve(ctx, issuer, ext[i]); err != nil {
			return nil, err
		}
	}
	s.MissMeanUs = time.Since(start).Seconds() * 1e6 / float64(n)
	s.BytesPerCachedTenant = float64(int64(heapInUse())-int64(heap0)) / float64(n)
	runtime.KeepAlive(reg)

	// Hits.
	ns, allocs, perSec, err := resolveLoop(ctx, reg, issuer, ext, 2*time.Second)
	if err != nil {
		return nil, err
	}
	s.HitNs, s.HitAllocsPer, s.HitsPerSecond = ns, allocs, perSec

	// Default cache size.
	small := registry.New(st, nil)
	ns, _, _, err = resolveLoop(ctx, small, issuer, ext, 2*time.Second)
	if err != nil {
		return nil, err
	}
	stats := small.Stats()
	s.DefaultCacheNs = ns
	if tot := stats.Hits + stats.Misses; tot > 0 {
		s.DefaultCacheHitRate = float64(stats.Hits) / float64(tot)
	}
	s.PerTenantSample = min(n, 10000)
	if s.BytesPerCachedToken, s.BytesPerLimiterKey, err = perTenantMemory(ctx, s.PerTenantSample); err != nil {
		return nil, err
	}
	for _, p := range []*float64{&s.BytesPerCachedToken, &s.BytesPerLimiterKey, &s.AddMeanUs, &s.AddP99Us, &s.AddTotalS, &s.MissMeanUs, &s.BytesPerCachedTenant, &s.HitNs, &s.HitAllocsPer, &s.HitsPerSecond, &s.DefaultCacheNs} {
		*p = round1(*p)
	}
	s.DefaultCacheHitRate = float64(int(s.DefaultCacheHitRate*1000)) / 1000
	return s, nil
}

// resolveLoop resolves random tenants on two goroutines for d and returns
// ns per Resolve (wall time × goroutines / calls), allocations per
// Resolve and Resolves per second.
func resolveLoop(ctx context.Context, reg *registry.Registry, issuer string, ext []string, d time.Duration) (nsPer, allocsPer, perSec float64, err error) {
	const workers = 2
	var stop atomic.Bool
	var calls atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	var before, after memStats
	before.read()
	start := time.Now()
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 42))
			var k int64
			for !stop.Load() {
				for range 256 {
					if _, err := reg.Resolve(ctx, issuer, ext[r.IntN(len(ext))]); err != nil {
						firstErr.CompareAndSwap(nil, err)
					}
				}
				k += 256
			}
			calls.Add(k)
		})
	}
	time.Sleep(d)
	stop.Store(true)
	wg.Wait()
	elapsed := time.Since(start)
	after.read()
	if e := firstErr.Load(); e != nil {
		return 0, 0, 0, e.(error)
	}
	c := float64(calls.Load())
	return float64(elapsed.Nanoseconds()) * workers / c, float64(after.mallocs-before.mallocs) / c, c / elapsed.Seconds(), nil
}

// perTenantMemory measures the heap a verified token keeps in the token
// cache (dev issuer tokens: iss, aud, sub, org_id, org_name, scope, iat,
// nbf, exp, jti) and a tenant key keeps in the in-memory rate limiter.
func perTenantMemory(ctx context.Context, n int) (perToken, perKey float64, err error) {
	key, err := auth.GenerateDevKey()
	if err != nil {
		return 0, 0, err
	}
	iss, err := auth.NewDevIssuer("https://idp.example.com", key)
	if err != nil {
		return 0, 0, err
	}
	const aud = "https://mcp.example.com/mcp"
	v, err := auth.NewVerifier(ctx, &auth.Options{Issuer: iss.Issuer(), Audience: aud, JWKS: iss.JWKS(), Claims: auth.DevClaimMap(), CacheSize: 4 * n, DropClaims: true})
	if err != nil {
		return 0, 0, err
	}
	defer v.Close()
	tokens := make([]string, n)
	for i := range tokens {
		ext := "org_" + itoa(i)
		if tokens[i], err = iss.Mint(auth.TokenRequest{Audience: aud, TenantID: ext, TenantName: "Org " + ext, UserID: "user-" + itoa(i), Scopes: benchScopes}); err != nil {
			return 0, 0, err
		}
	}
	// Two halves, so that the cache's preallocated maps (a fixed cost)
	// are not counted per token.
	for _, tok := range tokens[:n/2] {
		if _, err := v.Verify(ctx, tok); err != nil {
			return 0, 0, err
		}
	}
	h0 := heapInUse()
	for _, tok := range tokens[n/2:] {
		if _, err := v.Verify(ctx, tok); err != nil {
			return 0, 0, err
		}
	}
	perToken = float64(int64(heapInUse())-int64(h0)) / float64(n-n/2)
	runtime.KeepAlive(v)
	runtime.KeepAlive(tokens) // the tokens are the client's, not the cache's

	lim := ratelimit.NewMemory(nil)
	defer lim.Close()
	keys := make([]string, n)
	for i := range keys {
		keys[i] = string(tenant.NewID())
	}
	h0 = heapInUse()
	for _, k := range keys {
		// The deployment default (100 per minute): a key is kept until its
		// budget is full again. (With the bench's huge limit the limiter
		// would forget keys almost at once.)
		if _, err := lim.Allow(ctx, k, ratelimit.Limit{PerMinute: 100}); err != nil {
			return 0, 0, err
		}
	}
	// The key strings belong to the registry records, not the limiter;
	// the limiter's map holds a reference to them.
	perKey = float64(int64(heapInUse())-int64(h0)) / float64(n)
	runtime.KeepAlive(lim)
	runtime.KeepAlive(keys)
	return perToken, perKey, nil
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
