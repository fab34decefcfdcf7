package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/tenantmcp/tenantmcp/examples/documents"
	"github.com/tenantmcp/tenantmcp/internal/testenv"
	"github.com/tenantmcp/tenantmcp/ratelimit"
	"github.com/tenantmcp/tenantmcp/registry"
	"github.com/tenantmcp/tenantmcp/server"
)

// TestReplicasShareRedisBudget: three server replicas behind one URL
// (round-robin) draw on one Redis budget per tenant.
func TestReplicasShareRedisBudget(t *testing.T) {
	addr, ns := testenv.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })

	f := setup(t, setupOptions{claims: genericClaims})
	f.addTenant(t, "acme", func(r *registry.Tenant) { r.RateLimit, r.RateBurst = 1, 5 })
	f.addTenant(t, "globex", nil)

	var replicas []http.Handler
	for range 3 {
		srv, err := server.New(server.Options{
			ResourceURL:  f.url,
			Verifier:     f.verifier,
			Registry:     f.reg,
			Limiter:      ratelimit.NewRedis(rdb, &ratelimit.RedisOptions{Prefix: ns}),
			DefaultLimit: ratelimit.Limit{PerMinute: 6000, Burst: 1000},
			Tools:        documents.Tools(),
		})
		if err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, srv)
	}
	next := 0
	lb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		replicas[next%len(replicas)].ServeHTTP(w, r)
		next++
	}))
	t.Cleanup(lb.Close)
	endpoint := lb.URL + "/mcp"

	acme := "Bearer " + f.genericToken("acme", "u")
	allowed := 0
	for range 9 {
		resp, _ := rawPost(t, endpoint, acme, "")
		switch resp.StatusCode {
		case 200:
			allowed++
		case http.StatusTooManyRequests:
		default:
			t.Fatalf("unexpected status %d", resp.StatusCode)
		}
	}
	// The burst of 5 is shared: in-process limiters would have allowed
	// 9 (3 per replica, each under its own burst of 5).
	if allowed != 5 {
		t.Fatalf("admitted %d of 9 across 3 replicas, want the shared burst of 5", allowed)
	}
	if resp, _ := rawPost(t, endpoint, "Bearer "+f.genericToken("globex", "u"), ""); resp.StatusCode != 200 {
		t.Fatalf("globex refused: %d", resp.StatusCode)
	}
}
