package ratelimit_test

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/tenantmcp/tenantmcp/ratelimit"
)

func ExampleMemory() {
	// A fixed clock keeps the output stable; production code passes nil.
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	lim := ratelimit.NewMemory(&ratelimit.MemoryOptions{Now: func() time.Time { return now }})
	defer lim.Close()

	ctx := context.Background()
	l := ratelimit.Limit{PerMinute: 100, Burst: 2}
	for range 3 {
		d, _ := lim.Allow(ctx, "t-acme", l)
		fmt.Println(d.Allowed, d.Remaining, d.RetryAfter)
	}
	now = now.Add(600 * time.Millisecond) // 100/min: one unit back every 600ms
	d, _ := lim.Allow(ctx, "t-acme", l)
	fmt.Println(d.Allowed)
	// Output:
	// true 1 0s
	// true 0 0s
	// false 0 600ms
	// true
}

func ExampleDefaultBurst() {
	// A limit without a burst starts with one minute's worth: at 100/min an
	// agent's first 100 parallel calls are admitted.
	fmt.Println(ratelimit.DefaultBurst(100))
	fmt.Println(ratelimit.Limit{PerMinute: 100}.Effective())
	fmt.Println(ratelimit.Limit{PerMinute: 100, Burst: 10}.Effective())
	// Output:
	// 100
	// {100 100}
	// {100 10}
}

func ExampleDecision_WriteHeaders() {
	d := ratelimit.Decision{
		Allowed:    false,
		Limit:      ratelimit.Limit{PerMinute: 100, Burst: 16},
		RetryAfter: 600 * time.Millisecond,
		ResetAfter: 9600 * time.Millisecond,
	}
	h := http.Header{}
	d.WriteHeaders(h, "tenant")
	fmt.Println("RateLimit-Policy:", h.Get("RateLimit-Policy"))
	fmt.Println("RateLimit:", h.Get("RateLimit"))
	fmt.Println("Retry-After:", h.Get("Retry-After"))
	// Output:
	// RateLimit-Policy: "tenant";q=100;w=60
	// RateLimit: "tenant";r=0;t=10
	// Retry-After: 1
}

func ExampleConcurrency() {
	c := ratelimit.NewConcurrency()
	release, ok := c.Acquire("t-acme", 1)
	fmt.Println(ok)
	_, ok2 := c.Acquire("t-acme", 1) // the tenant's only slot is taken
	fmt.Println(ok2)
	release()
	fmt.Println(c.Len())
	// Output:
	// true
	// false
	// 0
}
