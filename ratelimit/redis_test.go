package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tenantmcp/tenantmcp/internal/testenv"
)

// sharedRedis returns a client for the shared test Redis and a key namespace
// unique to the test (cleaned up afterwards).
func sharedRedis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	addr, ns := testenv.Redis(t)
	c := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { c.Close() })
	return c, ns
}

func TestRedisContract(t *testing.T) {
	t.Parallel()
	c, ns := sharedRedis(t)
	var n atomic.Int64
	runContract(t, func(t *testing.T, clock func() time.Time) Limiter {
		// A fresh prefix per scenario: a limiter with no state.
		return NewRedis(c, &RedisOptions{Prefix: fmt.Sprintf("%s%d:", ns, n.Add(1)), Now: clock})
	})
}

// Three limiters, each with its own connection pool as separate replicas
// would have, share one budget: the admitted count is that of one limiter.
func TestRedisAccuracyAcrossReplicas(t *testing.T) {
	t.Parallel()
	addr, ns := testenv.Redis(t)
	clock := newFakeClock()
	var ls []Limiter
	for range 3 {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		ls = append(ls, NewRedis(c, &RedisOptions{Prefix: ns, Now: clock.Now}))
	}
	checkAccuracy(t, ls, clock)
}

// Concurrent callers through three replicas on a frozen clock: the script is
// atomic, so exactly the burst passes.
func TestRedisAtomicAcrossReplicas(t *testing.T) {
	t.Parallel()
	addr, ns := testenv.Redis(t)
	clock := newFakeClock()
	lim := Limit{PerMinute: 60, Burst: 30}
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 3 {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		l := NewRedis(c, &RedisOptions{Prefix: ns, Now: clock.Now})
		for range 4 {
			wg.Go(func() {
				for range 20 {
					d, err := l.Allow(context.Background(), "hot", lim)
					if err != nil {
						t.Error(err)
						return
					}
					if d.Allowed {
						allowed.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if got := allowed.Load(); got != 30 {
		t.Fatalf("allowed %d of 240 concurrent requests across 3 replicas, want exactly the burst 30", got)
	}
}

// On the Redis server's own clock, for about 1.5s: the admitted count must
// respect the budget. Over an elapsed time E (measured around the whole run,
// so at least the server-side span), GCRA admits at most Burst + E/T + 1.
// The lower bound is loose (half the refill) because a loaded CI machine may
// stall the client; the test asserts counts, never timing.
func TestRedisRealClock(t *testing.T) {
	t.Parallel()
	addr, ns := testenv.Redis(t)
	var ls []Limiter
	for range 3 {
		c := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { c.Close() })
		ls = append(ls, NewRedis(c, &RedisOptions{Prefix: ns}))
	}
	lim := Limit{PerMinute: 1200, Burst: 5} // T = 50ms
	const interval = 50 * time.Millisecond
	start := time.Now()
	admitted := 0
	for i := 0; time.Since(start) < 1500*time.Millisecond; i++ {
		if mustAllowAny(t, ls[i%3], "real", lim).Allowed {
			admitted++
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	upper := float64(lim.Burst) + float64(elapsed)/float64(interval) + 1
	lower := float64(lim.Burst) + 0.5*float64(elapsed)/float64(interval)
	t.Logf("admitted %d in %v (bounds %.1f..%.1f)", admitted, elapsed, lower, upper)
	if float64(admitted) > upper {
		t.Fatalf("admitted %d requests in %v, more than the budget allows (%.1f)", admitted, elapsed, upper)
	}
	if float64(admitted) < lower {
		t.Fatalf("admitted %d requests in %v, far fewer than the budget (%.1f)", admitted, elapsed, lower)
	}
}

// Keys carry a TTL ending when the budget is full again, so idle tenants
// leave nothing behind.
func TestRedisKeysExpireWhenFull(t *testing.T) {
	t.Parallel()
	c, ns := sharedRedis(t)
	ctx := context.Background()
	l := NewRedis(c, &RedisOptions{Prefix: ns})
	mustAllow(t, l, "idle", Limit{PerMinute: 60, Burst: 3}, true)
	ttl, err := c.PTTL(ctx, ns+"idle").Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Second {
		t.Fatalf("PTTL after one request at 60/min = %v, want in (0, 1s]", ttl)
	}
	mustAllow(t, l, "brief", Limit{PerMinute: 6000, Burst: 1}, true) // full again after 10ms
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := c.Exists(ctx, ns+"brief").Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("key still present long after its budget was full again")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n, _ := c.Exists(ctx, ns+"unlimited").Result(); n != 0 {
		t.Fatal("unexpected key")
	}
	mustAllow(t, l, "unlimited", Limit{PerMinute: 0}, true)
	if n, _ := c.Exists(ctx, ns+"unlimited").Result(); n != 0 {
		t.Fatal("an unlimited check wrote state to Redis")
	}
}

func TestRedisDefaultPrefix(t *testing.T) {
	t.Parallel()
	if got := NewRedis(nil, nil).prefix; got != "tenantmcp:rl:" {
		t.Fatalf("default prefix = %q", got)
	}
}

// ownRedis is a redis-server process private to one test, on a port of its
// own, so the test can stop and restart it without touching the shared one.
type ownRedis struct {
	t    *testing.T
	bin  string
	port int
	mu   sync.Mutex
	cmd  *exec.Cmd
}

func startOwnRedis(t *testing.T) *ownRedis {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server is required when CI=true: %v", err)
		}
		t.Skipf("redis-server not found (%v); install it to run this test", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	r := &ownRedis{t: t, bin: bin, port: port}
	r.start()
	t.Cleanup(r.stop)
	return r
}

func (r *ownRedis) addr() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

func (r *ownRedis) start() {
	r.t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	cmd := exec.Command(r.bin, "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no")
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	r.cmd = cmd
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", r.addr(), 100*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on port %d did not start: %v", r.port, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *ownRedis) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Kill()
	r.cmd.Wait()
	r.cmd = nil
}

// Redis dies mid-test and comes back on the same port: FailOpen allows and
// counts, FailClosed answers ErrUnavailable, nothing panics, and both recover
// by themselves once Redis is back and the cooldown has passed.
func TestRedisStopAndRestart(t *testing.T) {
	t.Parallel()
	srv := startOwnRedis(t)
	c := redis.NewClient(&redis.Options{
		Addr:         srv.addr(),
		DialTimeout:  200 * time.Millisecond,
		ReadTimeout:  200 * time.Millisecond,
		WriteTimeout: 200 * time.Millisecond,
		MaxRetries:   -1,
		// go-redis retries a failed dial 5 times, 100ms apart, by default:
		// half a second per probe of a dead server.
		DialerRetries:      1,
		DialerRetryTimeout: 10 * time.Millisecond,
	})
	t.Cleanup(func() { c.Close() })
	primary := NewRedis(c, nil)
	var openErrs, closedErrs atomic.Int64
	const cooldown = 50 * time.Millisecond
	open := NewFailover(primary, FailOpen, &FailoverOptions{Cooldown: cooldown, OnError: func(error) { openErrs.Add(1) }})
	closed := NewFailover(primary, FailClosed, &FailoverOptions{Cooldown: cooldown, OnError: func(error) { closedErrs.Add(1) }})
	ctx := context.Background()
	lim := Limit{PerMinute: 60, Burst: 2}

	// Healthy: real decisions, shared through Redis.
	for _, l := range []Limiter{open, closed} {
		if _, err := l.Allow(ctx, "tenant", lim); err != nil {
			t.Fatalf("healthy Allow: %v", err)
		}
	}
	if d := mustAllowAny(t, open, "tenant", lim); d.Allowed {
		t.Fatalf("third request within burst 2 allowed while Redis is healthy: %+v", d)
	}

	srv.stop()
	for i := range 5 {
		d, err := open.Allow(ctx, "tenant", lim)
		if err != nil || !d.Allowed {
			t.Fatalf("FailOpen with Redis down, call %d: %+v, %v; want allowed", i, d, err)
		}
		_, err = closed.Allow(ctx, "tenant", lim)
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("FailClosed with Redis down, call %d: err = %v, want ErrUnavailable", i, err)
		}
	}
	if openErrs.Load() != 5 || closedErrs.Load() != 5 {
		t.Fatalf("OnError counted %d (open) and %d (closed) degraded decisions, want 5 each", openErrs.Load(), closedErrs.Load())
	}
	// The limiter talked to Redis directly reports the outage too.
	if _, err := primary.Allow(ctx, "tenant", lim); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Redis limiter with Redis down: err = %v, want ErrUnavailable", err)
	}

	srv.start() // same port, empty: no state, no cached script (NOSCRIPT path)
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, err := closed.Allow(ctx, "probe", lim)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("FailClosed while recovering: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("FailClosed limiter did not recover after Redis came back: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Recovered: decisions come from Redis again, so the budget bites.
	before := openErrs.Load()
	deadline = time.Now().Add(15 * time.Second)
	for {
		d := mustAllowAny(t, open, "after", Limit{PerMinute: 60, Burst: 1})
		if openErrs.Load() == before {
			// This decision came from Redis; the next one must be refused.
			if !d.Allowed {
				t.Fatalf("first request on a fresh key after recovery refused: %+v", d)
			}
			break
		}
		before = openErrs.Load()
		if time.Now().After(deadline) {
			t.Fatal("FailOpen limiter did not recover after Redis came back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if d := mustAllowAny(t, open, "after", Limit{PerMinute: 60, Burst: 1}); d.Allowed {
		t.Fatalf("second request with burst 1 after recovery allowed: %+v (decisions not from Redis?)", d)
	}
}

func BenchmarkRedisAllow(b *testing.B) {
	addr, ns := testenv.Redis(b)
	c := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})
	defer c.Close()
	l := NewRedis(c, &RedisOptions{Prefix: ns})
	const tenants = 10_000
	keys := make([]string, tenants)
	for i := range keys {
		keys[i] = fmt.Sprintf("t%020d", i)
	}
	ctx := context.Background()
	lim := Limit{PerMinute: math.MaxInt32, Burst: 100}
	var seq uint64
	b.ReportAllocs()
	b.SetParallelism(16) // requests wait on the network: more callers than cores
	b.ResetTimer()
	cpu := processCPU()
	defer func() { reportCPU(b, processCPU()-cpu) }()
	b.RunParallel(func(pb *testing.PB) {
		i := int(atomicAdd(&seq, 7919)) % tenants
		for pb.Next() {
			if _, err := l.Allow(ctx, keys[i], lim); err != nil {
				b.Error(err)
				return
			}
			i = (i + 1) % tenants
		}
	})
}
