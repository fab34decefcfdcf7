// Package ratelimit enforces per-tenant (and per-user) request budgets with
// GCRA, the generic cell rate algorithm: each key's whole state is one
// timestamp, refill is continuous (at 100 requests per minute a unit comes
// back every 600 ms), bursts are explicit, and a key whose budget is full
// again holds no state at all.
//
// Two backends implement Limiter: Memory (in process, sharded, no
// allocation per check) for a single replica, and Redis (one atomic Lua
// script per check, on the Redis server's clock) for budgets shared by every
// replica. NewFailover decides what happens when Redis is unreachable
// (FailOpen or FailClosed), and Concurrency caps requests in flight per key.
//
// Keys are plain strings: the server uses "<tenant id>" for a tenant's
// budget and "<tenant id>|u|<user>" for a user's budget inside it.
//
//	lim := ratelimit.NewMemory(nil)
//	defer lim.Close()
//	// Burst 0: the default, one minute's worth (100 requests at once).
//	d, err := lim.Allow(ctx, string(tenantID), ratelimit.Limit{PerMinute: 100})
//	if err != nil {
//		// errors.Is(err, ratelimit.ErrUnavailable): answer 503
//	}
//	d.WriteHeaders(w.Header(), "tenant")
//	if !d.Allowed {
//		w.WriteHeader(http.StatusTooManyRequests) // Retry-After already set
//		return
//	}
//
// Behind several replicas:
//
//	rdb := redis.NewClient(&redis.Options{Addr: "redis:6379"})
//	lim := ratelimit.NewFailover(ratelimit.NewRedis(rdb, nil), ratelimit.FailOpen,
//		&ratelimit.FailoverOptions{Logger: logger, OnError: func(error) { degraded.Inc() }})
package ratelimit
